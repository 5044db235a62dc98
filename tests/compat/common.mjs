// common.mjs -- what the compat tests share: the gateway run.py started
// (from the environment), SDK clients, and the mock's deterministic answer
// (docs/mock-model.md).
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through tests/compat/run.py`);
  return v;
}

export const BASE_URL = need('COMPAT_BASE_URL');   // http://127.0.0.1:P/v1
export const ROOT_URL = need('COMPAT_ROOT_URL');   // http://127.0.0.1:P
export const KEY = need('COMPAT_KEY');
export const KEY_LIMITED = need('COMPAT_KEY_LIMITED'); // only OPENAI_MODEL
export const MOCK_URL = need('COMPAT_MOCK_URL');
export const OPENAI_MODEL = need('COMPAT_OPENAI_MODEL');
export const OPENAI_MODEL_2 = need('COMPAT_OPENAI_MODEL_2');
export const EMBED_MODEL = need('COMPAT_EMBED_MODEL');
export const ANTHROPIC_MODEL = need('COMPAT_ANTHROPIC_MODEL');
export const DOWN_MODEL = need('COMPAT_DOWN_MODEL');           // upstream unreachable
export const NOT_FOUND_MODEL = need('COMPAT_NOT_FOUND_MODEL'); // upstream says 404
export const SLOW_MODEL = need('COMPAT_SLOW_MODEL');           // slow stream, own mock
export const SLOW_MOCK_URL = need('COMPAT_SLOW_MOCK_URL');
export const SLOW_CHUNKS = Number(need('COMPAT_SLOW_CHUNKS'));

// A key of the right shape that no token has.
export const BAD_KEY = 'sk-' + 'Zz9'.repeat(16);

// Every test gets this bound (node:test `timeout`); the SDKs time out
// before it, and never retry (a retry would hide the first answer).
export const TEST_TIMEOUT_MS = 30_000;
export const SDK_TIMEOUT_MS = 20_000;
export const T = { timeout: TEST_TIMEOUT_MS };

// Upstream drops (x-mock-drop-after) end the SDK stream: a shorter bound.
export const T_DROP = { timeout: 10_000 };

// The mock's answer: CHUNKS chunks "tok<i> "; prompt tokens =
// ceil(text bytes / 4) over messages/system/prompt/input/instructions.
export const PROMPT = 'Say something deterministic.'; // 28 bytes -> 7
export const PROMPT_TOKENS = 7;
export const CHUNKS = 16;
export const CONTENT = Array.from({ length: CHUNKS }, (_, i) => `tok${i} `).join('');
export const SYSTEM = 'Be brief.'; // 9 bytes: with PROMPT 37 -> 10 tokens
export const PROMPT_SYSTEM_TOKENS = 10;

export const REQUEST_ID_RE = /^[0-9a-fA-F]{32}$/;

export function openai(opts = {}) {
  return new OpenAI({
    apiKey: KEY,
    baseURL: BASE_URL,
    timeout: SDK_TIMEOUT_MS,
    maxRetries: 0,
    ...opts,
  });
}

export function anthropic(opts = {}) {
  return new Anthropic({
    apiKey: KEY,
    baseURL: ROOT_URL,
    timeout: SDK_TIMEOUT_MS,
    maxRetries: 0,
    ...opts,
  });
}

// Asserts an OpenAI-shaped usage object as the mock counts it.
export function assertChatUsage(usage, prompt, completion, what) {
  assert.ok(usage, `${what}: usage present`);
  assert.equal(usage.prompt_tokens, prompt, `${what}: prompt_tokens`);
  assert.equal(usage.completion_tokens, completion, `${what}: completion_tokens`);
  assert.equal(usage.total_tokens, prompt + completion, `${what}: total_tokens`);
}

// Runs fn, which must reject with an error of class cls; returns it.
export async function rejectsWith(fn, cls, status) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${cls.name}, but the call succeeded`);
  let got = `${err?.constructor?.name}: ${err?.message}`;
  for (let c = err?.cause, i = 0; c && i < 3; c = c.cause, i += 1) {
    got += ` <- ${c.code ? c.code + ' ' : ''}${c.message ?? c}`;
  }
  assert.ok(err instanceof cls, `expected ${cls.name}, got ${got}`);
  assert.equal(err.status, status, `HTTP status of ${got}`);
  return err;
}

// The mock's GET /mock/stats (what reached the upstream last); mockUrl
// selects the slow mock.
export async function mockStats(mockUrl = MOCK_URL) {
  const r = await fetch(mockUrl.replace(/\/v1$/, '/mock/stats'),
    { signal: AbortSignal.timeout(SDK_TIMEOUT_MS) });
  assert.equal(r.status, 200, 'mock stats');
  return r.json();
}

// Polls the slow mock's stream counters until pred(streams) holds; gives
// up (returning the last counters) after limitMs.  No timing is asserted:
// the caller asserts the state reached.
export async function waitStreams(pred, limitMs = 10_000) {
  const end = Date.now() + limitMs;
  for (;;) {
    const st = (await mockStats(SLOW_MOCK_URL)).streams;
    if (pred(st) || Date.now() > end) return st;
    await new Promise((r) => setTimeout(r, 50));
  }
}
