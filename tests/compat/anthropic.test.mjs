// anthropic.test.mjs -- the official `@anthropic-ai/sdk` npm package,
// unchanged, against the gateway's POST /v1/messages: passed through to an
// anthropic-type channel (ANTHROPIC_MODEL) and converted to/from chat
// completions for an openai-type channel (OPENAI_MODEL); non-stream, raw
// stream events, the MessageStream helper, and the error classes.  Both
// channels point at the mock model, so both ways give the same answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import {
  T, T_DROP, KEY, BAD_KEY, OPENAI_MODEL, ANTHROPIC_MODEL, PROMPT, PROMPT_TOKENS,
  CHUNKS, CONTENT, SYSTEM, PROMPT_SYSTEM_TOKENS, DOWN_MODEL, NOT_FOUND_MODEL,
  SLOW_MODEL, SLOW_MOCK_URL, SLOW_CHUNKS, anthropic, rejectsWith, mockStats,
  waitStreams,
} from './common.mjs';

const MESSAGES = [{ role: 'user', content: PROMPT }];
const WAYS = [
  { name: 'anthropic channel', model: ANTHROPIC_MODEL, upstreamPath: '/v1/messages' },
  { name: 'openai channel (converted)', model: OPENAI_MODEL, upstreamPath: '/v1/chat/completions' },
];

function assertMessage(m, model, text, stop, input, output) {
  assert.equal(m.type, 'message');
  assert.equal(m.role, 'assistant');
  assert.equal(typeof m.id, 'string');
  assert.ok(m.id.length > 0, 'id');
  assert.equal(m.model, model);
  assert.equal(m.content.length, 1, `one content block: ${JSON.stringify(m.content)}`);
  assert.equal(m.content[0].type, 'text');
  assert.equal(m.content[0].text, text);
  assert.equal(m.stop_reason, stop);
  assert.equal(m.usage.input_tokens, input, 'usage.input_tokens');
  assert.equal(m.usage.output_tokens, output, 'usage.output_tokens');
}

for (const way of WAYS) {
  test(`anthropic messages.create non-stream, ${way.name}`, T, async () => {
    const m = await anthropic().messages.create({
      model: way.model, max_tokens: 1024, messages: MESSAGES,
    });
    assertMessage(m, way.model, CONTENT, 'end_turn', PROMPT_TOKENS, CHUNKS);
    const last = (await mockStats()).last;
    assert.equal(last.path, way.upstreamPath, 'what went upstream');
    assert.equal(last.model, way.model);
  });

  test(`anthropic messages.create system + max_tokens, ${way.name}`, T, async () => {
    const m = await anthropic().messages.create({
      model: way.model, max_tokens: 3, system: SYSTEM, messages: MESSAGES,
    });
    assertMessage(m, way.model, 'tok0 tok1 tok2 ', 'max_tokens',
      PROMPT_SYSTEM_TOKENS, 3);
  });

  test(`anthropic messages.create stream events, ${way.name}`, T, async () => {
    const stream = await anthropic().messages.create({
      model: way.model, max_tokens: 1024, messages: MESSAGES, stream: true,
    });
    const events = [];
    for await (const ev of stream) events.push(ev);
    const types = events.map((e) => e.type).filter((t) => t !== 'ping');
    assert.deepEqual(types, [
      'message_start', 'content_block_start',
      ...Array(CHUNKS).fill('content_block_delta'),
      'content_block_stop', 'message_delta', 'message_stop',
    ]);
    const start = events.find((e) => e.type === 'message_start').message;
    assert.equal(start.role, 'assistant');
    assert.equal(start.model, way.model);
    assert.equal(typeof start.usage.input_tokens, 'number', 'message_start usage');
    if (way.model === ANTHROPIC_MODEL) {
      assert.equal(start.usage.input_tokens, PROMPT_TOKENS, 'message_start input_tokens');
    } else {
      // converted: the gateway's estimate of the prompt, not 0
      assert.ok(start.usage.input_tokens > 0, 'message_start input_tokens estimated');
    }
    const block = events.find((e) => e.type === 'content_block_start');
    assert.equal(block.index, 0);
    assert.equal(block.content_block.type, 'text');
    const text = events.filter((e) => e.type === 'content_block_delta')
      .map((e) => { assert.equal(e.delta.type, 'text_delta'); return e.delta.text; })
      .join('');
    assert.equal(text, CONTENT);
    const delta = events.find((e) => e.type === 'message_delta');
    assert.equal(delta.delta.stop_reason, 'end_turn');
    assert.equal(delta.usage.output_tokens, CHUNKS, 'cumulative output_tokens');
    // An OpenAI stream reports the prompt only at its end, so a converted
    // message_start carries an estimate; message_delta's cumulative usage must
    // (the SDK takes input_tokens from there when present).
    assert.equal(delta.usage.input_tokens ?? start.usage.input_tokens, PROMPT_TOKENS,
      'input_tokens (message_delta, else message_start)');
  });

  test(`anthropic messages.create multi-turn, content blocks, ${way.name}`, T, async () => {
    // Text bytes 3 + 6 + 28 = 37 -> 10 prompt tokens, however the turns
    // are carried upstream.
    const m = await anthropic().messages.create({
      model: way.model, max_tokens: 1024,
      messages: [
        { role: 'user', content: 'Hi.' },
        { role: 'assistant', content: [{ type: 'text', text: 'Hello.' }] },
        { role: 'user', content: [{ type: 'text', text: PROMPT }] },
      ],
    });
    assertMessage(m, way.model, CONTENT, 'end_turn', 10, CHUNKS);
  });

  test(`anthropic messages.create stream max_tokens, ${way.name}`, T, async () => {
    const stream = await anthropic().messages.create({
      model: way.model, max_tokens: 3, messages: MESSAGES, stream: true,
    });
    const events = [];
    for await (const ev of stream) events.push(ev);
    const text = events.filter((e) => e.type === 'content_block_delta')
      .map((e) => e.delta.text).join('');
    assert.equal(text, 'tok0 tok1 tok2 ');
    const delta = events.find((e) => e.type === 'message_delta');
    assert.equal(delta.delta.stop_reason, 'max_tokens');
    assert.equal(delta.usage.output_tokens, 3);
    assert.equal(events.at(-1).type, 'message_stop');
  });

  test(`anthropic upstream 400 -> BadRequestError (Anthropic shape), ${way.name}`, T, async () => {
    const err = await rejectsWith(() => anthropic().messages.create(
      { model: way.model, max_tokens: 1024, messages: MESSAGES },
      { headers: { 'x-mock-status': '400' } },
    ), Anthropic.BadRequestError, 400);
    assert.equal(err.error?.type, 'error', `body: ${JSON.stringify(err.error)}`);
    assert.equal(err.error?.error?.type, 'invalid_request_error');
    assert.equal(err.error?.error?.message, 'mock error: status 400');
  });

  test(`anthropic upstream 429 -> RateLimitError (Anthropic shape), ${way.name}`, T, async () => {
    const err = await rejectsWith(() => anthropic().messages.create(
      { model: way.model, max_tokens: 1024, messages: MESSAGES },
      { headers: { 'x-mock-status': '429' } },
    ), Anthropic.RateLimitError, 429);
    assert.equal(err.error?.error?.type, 'rate_limit_error');
  });

  test(`anthropic upstream drops mid-stream -> the SDK stream throws, ${way.name}`, T_DROP, async () => {
    const stream = anthropic().messages.stream(
      { model: way.model, max_tokens: 1024, messages: MESSAGES },
      { headers: { 'x-mock-drop-after': '3' } },
    );
    let text = '';
    stream.on('text', (d) => { text += d; });
    await assert.rejects(stream.finalMessage(), 'a cut stream is an error');
    assert.equal(text, 'tok0 tok1 tok2 ', 'the deltas before the drop');
  });

  test(`anthropic upstream reports no usage -> usage still present, ${way.name}`, T, async () => {
    const m = await anthropic().messages.create(
      { model: way.model, max_tokens: 1024, messages: MESSAGES },
      { headers: { 'x-mock-no-usage': '1' } },
    );
    assert.equal(m.content[0].text, CONTENT);
    if (way.model === ANTHROPIC_MODEL) return; // passed through as the upstream sent it
    assert.equal(typeof m.usage?.input_tokens, 'number', `usage: ${JSON.stringify(m.usage)}`);
    assert.equal(typeof m.usage?.output_tokens, 'number', `usage: ${JSON.stringify(m.usage)}`);
  });

  test(`anthropic messages.stream helper, ${way.name}`, T, async () => {
    const stream = anthropic().messages.stream({
      model: way.model, max_tokens: 1024, system: SYSTEM, messages: MESSAGES,
    });
    let deltas = '';
    stream.on('text', (d) => { deltas += d; });
    const m = await stream.finalMessage();
    assert.equal(deltas, CONTENT);
    assertMessage(m, way.model, CONTENT, 'end_turn', PROMPT_SYSTEM_TOKENS, CHUNKS);
  });
}

test('anthropic converted stream arrives while the upstream is still streaming', T, async () => {
  const before = (await mockStats(SLOW_MOCK_URL)).streams;
  const stream = anthropic().messages.stream({
    model: SLOW_MODEL, max_tokens: 1024, messages: MESSAGES,
  });
  let first = null;
  stream.once('text', () => { first = mockStats(SLOW_MOCK_URL); });
  const m = await stream.finalMessage();
  assert.ok(first, 'got a text delta');
  const atFirst = (await first).streams;
  assert.equal(atFirst.completed, before.completed,
    `upstream stream still open at the first delta: ${JSON.stringify(atFirst)}`);
  assert.equal(m.content[0].text,
    Array.from({ length: SLOW_CHUNKS }, (_, i) => `tok${i} `).join(''));
  assert.equal(m.usage.output_tokens, SLOW_CHUNKS);
  assert.equal(m.stop_reason, 'end_turn');
});

test('anthropic stream aborted by the client stops the upstream stream', T, async () => {
  const before = (await mockStats(SLOW_MOCK_URL)).streams;
  const stream = anthropic().messages.stream({
    model: SLOW_MODEL, max_tokens: 1024, messages: MESSAGES,
  });
  let n = 0;
  stream.on('text', () => { n += 1; if (n === 3) stream.abort(); });
  await rejectsWith(() => stream.done(), Anthropic.APIUserAbortError, undefined);
  // Deltas already read with the third may still be delivered.
  assert.ok(n >= 3 && n < SLOW_CHUNKS, `text events: ${n}`);
  const st = await waitStreams((s) => s.incomplete > before.incomplete
    || s.completed > before.completed);
  assert.equal(st.completed, before.completed, 'upstream did not run to the end');
  assert.equal(st.incomplete, before.incomplete + 1,
    `upstream stream cut: ${JSON.stringify(st)}`);
});

test('anthropic Bearer auth (authToken) works too', T, async () => {
  const m = await anthropic({ apiKey: null, authToken: KEY }).messages.create({
    model: ANTHROPIC_MODEL, max_tokens: 1024, messages: MESSAGES,
  });
  assert.equal(m.content[0].text, CONTENT);
});

test('anthropic upstream gets the channel key, anthropic-version', T, async () => {
  await anthropic().messages.create({
    model: ANTHROPIC_MODEL, max_tokens: 1024, messages: MESSAGES,
  });
  const last = (await mockStats()).last;
  assert.equal(last.path, '/v1/messages');
  assert.equal(last.x_api_key, 'sk-ant-upstream-secret', 'channel key as x-api-key');
  assert.ok(last.headers['anthropic-version'], 'anthropic-version sent upstream');
  assert.ok(!JSON.stringify(last).includes(KEY), 'the client key stays at the gateway');
});

test('anthropic-beta reaches an anthropic channel, not an openai one', T, async () => {
  const beta = 'compat-test-2025-01-01';
  await anthropic().messages.create({
    model: ANTHROPIC_MODEL, max_tokens: 1024, messages: MESSAGES,
  }, { headers: { 'anthropic-beta': beta } });
  let last = (await mockStats()).last;
  assert.equal(last.path, '/v1/messages');
  assert.equal(last.headers['anthropic-beta'], beta);
  await anthropic().messages.create({
    model: OPENAI_MODEL, max_tokens: 1024, messages: MESSAGES,
  }, { headers: { 'anthropic-beta': beta } });
  last = (await mockStats()).last;
  assert.equal(last.path, '/v1/chat/completions');
  assert.equal(last.headers['anthropic-beta'], undefined);
  assert.equal(last.headers['anthropic-version'], undefined);
});

test('anthropic bad key -> AuthenticationError 401 (Anthropic error shape)', T, async () => {
  const err = await rejectsWith(() => anthropic({ apiKey: BAD_KEY }).messages.create({
    model: ANTHROPIC_MODEL, max_tokens: 1024, messages: MESSAGES,
  }), Anthropic.AuthenticationError, 401);
  assert.equal(err.error?.type, 'error', `body: ${JSON.stringify(err.error)}`);
  assert.equal(err.error?.error?.type, 'authentication_error');
  assert.equal(typeof err.error?.error?.message, 'string');
});

test('anthropic bad key on a stream -> AuthenticationError 401', T, async () => {
  const stream = anthropic({ apiKey: BAD_KEY }).messages.stream({
    model: ANTHROPIC_MODEL, max_tokens: 1024, messages: MESSAGES,
  });
  await rejectsWith(() => stream.finalMessage(), Anthropic.AuthenticationError, 401);
});

test('anthropic unknown model -> NotFoundError 404 (Anthropic error shape)', T, async () => {
  const err = await rejectsWith(() => anthropic().messages.create({
    model: 'no-such-model', max_tokens: 1024, messages: MESSAGES,
  }), Anthropic.NotFoundError, 404);
  assert.equal(err.error?.type, 'error', `body: ${JSON.stringify(err.error)}`);
  assert.equal(err.error?.error?.type, 'not_found_error');
});

test('anthropic upstream unreachable -> InternalServerError 502 (Anthropic error shape)', T, async () => {
  const err = await rejectsWith(() => anthropic().messages.create({
    model: DOWN_MODEL, max_tokens: 1024, messages: MESSAGES,
  }), Anthropic.InternalServerError, 502);
  assert.equal(err.error?.type, 'error', `body: ${JSON.stringify(err.error)}`);
  assert.equal(err.error?.error?.type, 'api_error');
  assert.ok(!JSON.stringify(err.error).includes('sk-down-upstream-secret'), 'no channel key');
});

test('anthropic upstream 404 on an openai channel -> NotFoundError (converted error)', T, async () => {
  const err = await rejectsWith(() => anthropic().messages.create({
    model: NOT_FOUND_MODEL, max_tokens: 1024, messages: MESSAGES,
  }), Anthropic.NotFoundError, 404);
  assert.equal(err.error?.type, 'error', `body: ${JSON.stringify(err.error)}`);
  assert.equal(err.error?.error?.type, 'not_found_error');
  assert.equal(typeof err.error?.error?.message, 'string');
});

test('anthropic SDK sees the request id (request-id header)', T, async () => {
  const { data, request_id } = await anthropic().messages.create({
    model: ANTHROPIC_MODEL, max_tokens: 1024, messages: MESSAGES,
  }).withResponse();
  assert.equal(data.content[0].text, CONTENT);
  assert.match(request_id ?? '', /^[0-9a-fA-F]{32}$/);
});
