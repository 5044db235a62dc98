// openai.test.mjs -- the official `openai` npm package, unchanged, against
// the gateway: chat (non-stream, stream, stream helper), completions,
// embeddings, models, responses, and its error classes.  Expected values
// are the mock model's (docs/mock-model.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {
  T, T_DROP, BAD_KEY, KEY_LIMITED, OPENAI_MODEL, OPENAI_MODEL_2, EMBED_MODEL,
  ANTHROPIC_MODEL, DOWN_MODEL, NOT_FOUND_MODEL, SLOW_MODEL, SLOW_MOCK_URL,
  SLOW_CHUNKS, PROMPT, PROMPT_TOKENS, CHUNKS, CONTENT, REQUEST_ID_RE,
  openai, assertChatUsage, rejectsWith, mockStats, waitStreams,
} from './common.mjs';

const MESSAGES = [{ role: 'user', content: PROMPT }];

// --- chat completions ------------------------------------------------------

test('openai chat.completions.create non-stream', T, async () => {
  const client = openai();
  const { data: c, request_id } = await client.chat.completions
    .create({ model: OPENAI_MODEL, messages: MESSAGES }).withResponse();
  assert.match(request_id ?? '', REQUEST_ID_RE, 'x-request-id');
  assert.equal(c._request_id, request_id, '_request_id on the object');
  assert.equal(c.object, 'chat.completion');
  assert.match(c.id, /^chatcmpl-/);
  assert.equal(c.model, OPENAI_MODEL);
  assert.equal(typeof c.created, 'number');
  assert.equal(c.choices.length, 1);
  assert.equal(c.choices[0].index, 0);
  assert.equal(c.choices[0].message.role, 'assistant');
  assert.equal(c.choices[0].message.content, CONTENT);
  assert.equal(c.choices[0].finish_reason, 'stop');
  assertChatUsage(c.usage, PROMPT_TOKENS, CHUNKS, 'chat');
});

test('openai chat.completions.create max_tokens -> finish_reason length', T, async () => {
  const c = await openai().chat.completions.create({
    model: OPENAI_MODEL_2, messages: MESSAGES, max_tokens: 3,
  });
  assert.equal(c.model, OPENAI_MODEL_2);
  assert.equal(c.choices[0].message.content, 'tok0 tok1 tok2 ');
  assert.equal(c.choices[0].finish_reason, 'length');
  assertChatUsage(c.usage, PROMPT_TOKENS, 3, 'chat max_tokens');
});

test('openai chat.completions.create stream with include_usage', T, async () => {
  const { data: stream, request_id } = await openai().chat.completions.create({
    model: OPENAI_MODEL, messages: MESSAGES, stream: true,
    stream_options: { include_usage: true },
  }).withResponse();
  assert.match(request_id ?? '', REQUEST_ID_RE, 'x-request-id on a stream');
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.length >= CHUNKS + 2, `chunks: ${chunks.length}`);
  for (const ch of chunks) {
    assert.equal(ch.object, 'chat.completion.chunk');
    assert.equal(ch.model, OPENAI_MODEL);
  }
  assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id');
  const text = chunks.flatMap((c) => c.choices)
    .map((ch) => ch.delta?.content ?? '').join('');
  assert.equal(text, CONTENT, 'deltas spell the content');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const finishes = chunks.flatMap((c) => c.choices)
    .map((ch) => ch.finish_reason).filter(Boolean);
  assert.deepEqual(finishes, ['stop']);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, [], 'usage chunk has no choices');
  assertChatUsage(last.usage, PROMPT_TOKENS, CHUNKS, 'stream usage');
  assert.ok(chunks.slice(0, -1).every((c) => !c.usage), 'usage only at the end');
});

test('openai chat.completions.create stream without include_usage has no usage', T, async () => {
  const stream = await openai().chat.completions.create({
    model: OPENAI_MODEL, messages: MESSAGES, stream: true,
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const text = chunks.flatMap((c) => c.choices)
    .map((ch) => ch.delta?.content ?? '').join('');
  assert.equal(text, CONTENT);
  assert.ok(chunks.every((c) => !c.usage), 'no usage anywhere');
  assert.ok(chunks.every((c) => c.choices.length === 1), 'no usage-only chunk');
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
});

test('openai chat.completions.stream helper (finalChatCompletion)', T, async () => {
  const runner = openai().chat.completions.stream({
    model: OPENAI_MODEL, messages: MESSAGES,
    stream_options: { include_usage: true },
  });
  let deltas = '';
  runner.on('content', (delta) => { deltas += delta; });
  const final = await runner.finalChatCompletion();
  assert.equal(deltas, CONTENT);
  assert.equal(final.choices[0].message.content, CONTENT);
  assert.equal(final.choices[0].message.role, 'assistant');
  assert.equal(final.choices[0].finish_reason, 'stop');
  assertChatUsage(final.usage, PROMPT_TOKENS, CHUNKS, 'final usage');
});

test('openai stream arrives while the upstream is still streaming', T, async () => {
  // The slow mock takes ~5 s for its stream; the first delta must reach
  // the SDK while that stream is still open (no whole-response buffering).
  const before = (await mockStats(SLOW_MOCK_URL)).streams;
  const stream = await openai().chat.completions.create({
    model: SLOW_MODEL, messages: MESSAGES, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let atFirst = null;
  let usage = null;
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta?.content;
    if (d && atFirst === null) atFirst = (await mockStats(SLOW_MOCK_URL)).streams;
    text += d ?? '';
    usage = chunk.usage ?? usage;
  }
  assert.ok(atFirst, 'got a content delta');
  assert.equal(atFirst.completed, before.completed,
    `upstream stream still open at the first delta: ${JSON.stringify(atFirst)}`);
  assert.equal(text, Array.from({ length: SLOW_CHUNKS }, (_, i) => `tok${i} `).join(''));
  assertChatUsage(usage, PROMPT_TOKENS, SLOW_CHUNKS, 'slow stream');
});

test('openai stream abandoned by the client (break) stops the upstream stream', T, async () => {
  const before = (await mockStats(SLOW_MOCK_URL)).streams;
  const stream = await openai().chat.completions.create({
    model: SLOW_MODEL, messages: MESSAGES, stream: true,
  });
  let n = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) n += 1;
    if (n === 3) break; // the SDK aborts the HTTP request
  }
  assert.equal(n, 3);
  const st = await waitStreams((s) => s.incomplete > before.incomplete
    || s.completed > before.completed);
  assert.equal(st.completed, before.completed, 'upstream did not run to the end');
  assert.equal(st.incomplete, before.incomplete + 1,
    `upstream stream cut: ${JSON.stringify(st)}`);
});

test('openai one client, concurrent streams and non-streams', T, async () => {
  // One SDK client (one connection pool): 8 streams and 8 plain requests
  // at once, each with its own max_tokens, each answer complete and its own.
  const client = openai();
  const want = (n) => Array.from({ length: n }, (_, i) => `tok${i} `).join('');
  const jobs = [];
  for (let i = 1; i <= 8; i += 1) {
    jobs.push((async () => {
      const stream = await client.chat.completions.create({
        model: OPENAI_MODEL, messages: MESSAGES, max_tokens: i, stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      let usage = null;
      for await (const c of stream) {
        text += c.choices[0]?.delta?.content ?? '';
        usage = c.usage ?? usage;
      }
      return { i, text, completion: usage?.completion_tokens };
    })());
    jobs.push(client.chat.completions.create({
      model: OPENAI_MODEL, messages: MESSAGES, max_tokens: i,
    }).then((c) => ({ i, text: c.choices[0].message.content,
      completion: c.usage.completion_tokens })));
  }
  for (const r of await Promise.all(jobs)) {
    assert.equal(r.text, want(r.i), `max_tokens ${r.i}: text`);
    assert.equal(r.completion, r.i, `max_tokens ${r.i}: usage`);
  }
});

// --- legacy completions ----------------------------------------------------

test('openai completions.create non-stream', T, async () => {
  const c = await openai().completions.create({ model: OPENAI_MODEL, prompt: PROMPT });
  assert.equal(c.object, 'text_completion');
  assert.match(c.id, /^cmpl-/);
  assert.equal(c.model, OPENAI_MODEL);
  assert.equal(c.choices.length, 1);
  assert.equal(c.choices[0].text, CONTENT);
  assert.equal(c.choices[0].finish_reason, 'stop');
  assertChatUsage(c.usage, PROMPT_TOKENS, CHUNKS, 'completions');
});

test('openai completions.create stream with include_usage', T, async () => {
  const stream = await openai().completions.create({
    model: OPENAI_MODEL, prompt: PROMPT, stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const text = chunks.flatMap((c) => c.choices).map((ch) => ch.text ?? '').join('');
  assert.equal(text, CONTENT);
  const finishes = chunks.flatMap((c) => c.choices)
    .map((ch) => ch.finish_reason).filter(Boolean);
  assert.deepEqual(finishes, ['stop']);
  const withUsage = chunks.filter((c) => c.usage);
  assert.equal(withUsage.length, 1, 'one usage chunk');
  assertChatUsage(withUsage[0].usage, PROMPT_TOKENS, CHUNKS, 'completions stream');
});

// --- embeddings ------------------------------------------------------------

// Value j of vector k, as the mock makes it.
const mockValue = (k, j) => ((((7 * k + 13 * j) % 200) - 100) / 1000);

test('openai embeddings.create default (SDK asks base64, decodes floats)', T, async () => {
  const e = await openai().embeddings.create({ model: EMBED_MODEL, input: 'hello world!' });
  assert.equal(e.object, 'list');
  assert.equal(e.model, EMBED_MODEL);
  assert.equal(e.data.length, 1);
  assert.equal(e.data[0].object, 'embedding');
  assert.equal(e.data[0].index, 0);
  const v = e.data[0].embedding;
  assert.ok(Array.isArray(v), `embedding is an array, got ${typeof v}`);
  assert.equal(v.length, 16, 'default dimensions');
  v.forEach((x, j) => assert.equal(x, Math.fround(mockValue(0, j)), `value ${j}`));
  assert.equal(e.usage.prompt_tokens, 3, 'ceil(12 / 4)');
  assert.equal(e.usage.total_tokens, 3);
  const last = (await mockStats()).last;
  assert.equal(last.path, '/v1/embeddings');
  assert.match(last.body, /"encoding_format":\s*"base64"/, 'the SDK asked base64');
});

test('openai embeddings.create float, batch, dimensions', T, async () => {
  const e = await openai().embeddings.create({
    model: EMBED_MODEL, input: ['a', 'bb', 'ccc'], dimensions: 8,
    encoding_format: 'float',
  });
  assert.equal(e.data.length, 3);
  e.data.forEach((d, k) => {
    assert.equal(d.index, k);
    assert.equal(d.embedding.length, 8);
    d.embedding.forEach((x, j) => assert.ok(Math.abs(x - mockValue(k, j)) < 1e-9,
      `vector ${k} value ${j}: ${x}`));
  });
  assert.equal(e.usage.prompt_tokens, 2, 'ceil(6 / 4)');
});

// --- models ----------------------------------------------------------------

test('openai models.list', T, async () => {
  const ids = [];
  for await (const m of openai().models.list()) {
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    assert.equal(typeof m.owned_by, 'string');
    ids.push(m.id);
  }
  assert.deepEqual(ids.sort(), [ANTHROPIC_MODEL, EMBED_MODEL, OPENAI_MODEL,
    OPENAI_MODEL_2, DOWN_MODEL, NOT_FOUND_MODEL, SLOW_MODEL].sort());
});

test('openai models.retrieve', T, async () => {
  const m = await openai().models.retrieve(OPENAI_MODEL);
  assert.equal(m.id, OPENAI_MODEL);
  assert.equal(m.object, 'model');
  assert.equal(typeof m.created, 'number');
  assert.equal(typeof m.owned_by, 'string');
});

test('openai models.retrieve unknown -> NotFoundError', T, async () => {
  const err = await rejectsWith(() => openai().models.retrieve('no-such-model'),
    OpenAI.NotFoundError, 404);
  assert.equal(err.code, 'model_not_found');
});

// --- responses -------------------------------------------------------------

test('openai responses.create non-stream', T, async () => {
  const r = await openai().responses.create({ model: OPENAI_MODEL, input: PROMPT });
  assert.equal(r.object, 'response');
  assert.match(r.id, /^resp_/);
  assert.equal(r.status, 'completed');
  assert.equal(r.model, OPENAI_MODEL);
  assert.equal(r.output_text, CONTENT, 'SDK output_text');
  const msg = r.output.find((o) => o.type === 'message');
  assert.equal(msg.role, 'assistant');
  assert.equal(msg.content[0].type, 'output_text');
  assert.equal(msg.content[0].text, CONTENT);
  assert.equal(r.usage.input_tokens, PROMPT_TOKENS);
  assert.equal(r.usage.output_tokens, CHUNKS);
  assert.equal(r.usage.total_tokens, PROMPT_TOKENS + CHUNKS);
});

test('openai responses.create max_output_tokens -> incomplete', T, async () => {
  const r = await openai().responses.create({
    model: OPENAI_MODEL, input: PROMPT, max_output_tokens: 3,
  });
  assert.equal(r.status, 'incomplete');
  assert.equal(r.output_text, 'tok0 tok1 tok2 ');
  assert.equal(r.usage.output_tokens, 3);
});

test('openai responses.create stream', T, async () => {
  const stream = await openai().responses.create({
    model: OPENAI_MODEL, input: PROMPT, stream: true,
  });
  const events = [];
  for await (const ev of stream) events.push(ev);
  const types = events.map((e) => e.type);
  assert.equal(types[0], 'response.created');
  assert.equal(types.at(-1), 'response.completed');
  events.forEach((e, i) => assert.equal(e.sequence_number, i, 'sequence_number'));
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.equal(deltas.length, CHUNKS);
  assert.equal(deltas.map((e) => e.delta).join(''), CONTENT);
  const done = events.find((e) => e.type === 'response.output_text.done');
  assert.equal(done.text, CONTENT);
  const fin = events.at(-1).response;
  assert.equal(fin.status, 'completed');
  assert.equal(fin.usage.input_tokens, PROMPT_TOKENS);
  assert.equal(fin.usage.output_tokens, CHUNKS);
  assert.equal(fin.usage.total_tokens, PROMPT_TOKENS + CHUNKS);
});

test('openai responses.stream helper (finalResponse)', T, async () => {
  const stream = openai().responses.stream({ model: OPENAI_MODEL, input: PROMPT });
  let deltas = '';
  stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
  const r = await stream.finalResponse();
  assert.equal(deltas, CONTENT);
  assert.equal(r.output_text, CONTENT);
  assert.equal(r.status, 'completed');
  assert.equal(r.usage.output_tokens, CHUNKS);
});

// --- errors ----------------------------------------------------------------

test('openai bad key -> AuthenticationError 401', T, async () => {
  const err = await rejectsWith(() => openai({ apiKey: BAD_KEY }).chat.completions
    .create({ model: OPENAI_MODEL, messages: MESSAGES }), OpenAI.AuthenticationError, 401);
  assert.equal(err.code, 'invalid_api_key');
  assert.equal(err.type, 'invalid_request_error');
  assert.match(err.requestID ?? '', REQUEST_ID_RE, 'x-request-id on errors');
  assert.ok(!err.message.includes(BAD_KEY), 'the key is not echoed whole');
});

test('openai bad key on a stream -> AuthenticationError 401', T, async () => {
  await rejectsWith(() => openai({ apiKey: BAD_KEY }).chat.completions.create({
    model: OPENAI_MODEL, messages: MESSAGES, stream: true,
  }), OpenAI.AuthenticationError, 401);
});

test('openai bad key on models.list -> AuthenticationError 401', T, async () => {
  await rejectsWith(() => openai({ apiKey: BAD_KEY }).models.list(),
    OpenAI.AuthenticationError, 401);
});

test('openai unknown model -> NotFoundError 404', T, async () => {
  const err = await rejectsWith(() => openai().chat.completions.create({
    model: 'no-such-model', messages: MESSAGES,
  }), OpenAI.NotFoundError, 404);
  assert.equal(err.code, 'model_not_found');
  assert.equal(err.type, 'invalid_request_error');
});

test('openai model not allowed for the token -> PermissionDeniedError 403', T, async () => {
  const client = openai({ apiKey: KEY_LIMITED });
  const ok = await client.chat.completions.create({ model: OPENAI_MODEL, messages: MESSAGES });
  assert.equal(ok.choices[0].message.content, CONTENT, 'the allowed model works');
  const err = await rejectsWith(() => client.chat.completions.create({
    model: OPENAI_MODEL_2, messages: MESSAGES,
  }), OpenAI.PermissionDeniedError, 403);
  assert.equal(err.code, 'model_not_allowed');
});

test('openai malformed request -> BadRequestError 400', T, async () => {
  // The SDK sends what it is given; a non-string model is the gateway's to refuse.
  const err = await rejectsWith(() => openai().chat.completions.create({
    model: 42, messages: MESSAGES,
  }), OpenAI.BadRequestError, 400);
  assert.equal(err.type, 'invalid_request_error');
});

test('openai upstream unreachable -> InternalServerError 502 without secrets', T, async () => {
  const err = await rejectsWith(() => openai().chat.completions.create({
    model: DOWN_MODEL, messages: MESSAGES,
  }), OpenAI.InternalServerError, 502);
  assert.equal(err.code, 'upstream_error');
  assert.match(err.requestID ?? '', REQUEST_ID_RE);
  const text = JSON.stringify(err.error) + err.message;
  assert.ok(!text.includes('sk-down-upstream-secret'), 'no channel key');
  assert.ok(!text.includes('127.0.0.1'), 'no upstream URL');
});

test('openai upstream unreachable on a stream -> InternalServerError 502', T, async () => {
  await rejectsWith(() => openai().chat.completions.create({
    model: DOWN_MODEL, messages: MESSAGES, stream: true,
  }), OpenAI.InternalServerError, 502);
});

test('openai upstream 404 passed through -> NotFoundError', T, async () => {
  const err = await rejectsWith(() => openai().chat.completions.create({
    model: NOT_FOUND_MODEL, messages: MESSAGES,
  }), OpenAI.NotFoundError, 404);
  assert.equal(err.code, 'unknown_url', 'the upstream\'s own error code');
  assert.ok(!JSON.stringify(err.error).includes('sk-404-upstream-secret'), 'no channel key');
});

test('openai unknown path -> NotFoundError 404', T, async () => {
  const err = await rejectsWith(() => openai().get('/no-such-endpoint'),
    OpenAI.NotFoundError, 404);
  assert.equal(err.code, 'unknown_url');
});

test('openai body over the cap -> APIError 413', T, async () => {
  // The default cap (PF_BODY_MAX) is 4 MiB.
  const big = 'x'.repeat(5 * 1024 * 1024);
  const err = await rejectsWith(() => openai().chat.completions.create({
    model: OPENAI_MODEL, messages: [{ role: 'user', content: big }],
  }), OpenAI.APIError, 413);
  assert.equal(err.code, 'request_too_large');
});

// --- upstream faults (mock knobs: x-mock-* headers reach the upstream) -----

test('openai upstream 400 passed through -> BadRequestError with its body', T, async () => {
  const err = await rejectsWith(() => openai().chat.completions.create(
    { model: OPENAI_MODEL, messages: MESSAGES },
    { headers: { 'x-mock-status': '400' } },
  ), OpenAI.BadRequestError, 400);
  assert.equal(err.type, 'invalid_request_error');
  assert.equal(err.message, '400 mock error: status 400', 'the upstream\'s message');
});

test('openai upstream 429 -> RateLimitError 429', T, async () => {
  const err = await rejectsWith(() => openai().chat.completions.create(
    { model: OPENAI_MODEL, messages: MESSAGES },
    { headers: { 'x-mock-status': '429' } },
  ), OpenAI.RateLimitError, 429);
  assert.equal(err.code, 'rate_limit_exceeded');
});

test('openai upstream 500 -> InternalServerError 502', T, async () => {
  const err = await rejectsWith(() => openai().chat.completions.create(
    { model: OPENAI_MODEL, messages: MESSAGES },
    { headers: { 'x-mock-status': '500' } },
  ), OpenAI.InternalServerError, 502);
  assert.equal(err.code, 'upstream_error');
});

test('openai upstream drops mid-stream -> the SDK stream throws', T_DROP, async () => {
  const stream = await openai().chat.completions.create(
    { model: OPENAI_MODEL, messages: MESSAGES, stream: true },
    { headers: { 'x-mock-drop-after': '3' } },
  );
  let text = '';
  let err = null;
  try {
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
  } catch (e) {
    err = e;
  }
  assert.equal(text, 'tok0 tok1 tok2 ', 'the chunks before the drop');
  assert.ok(err, 'a cut stream is an error, not a short answer');
});
