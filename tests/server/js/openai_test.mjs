// Drives `loom serve` with the official openai npm client: chat and completions,
// streamed and not, and errors surfacing as the client's typed exceptions.
//   node openai_test.mjs LOOM_BINARY MODEL.gguf
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [loom, model] = process.argv.slice(2);
if (!loom || !model) {
  console.error('usage: node openai_test.mjs LOOM_BINARY MODEL.gguf');
  process.exit(2);
}

const KEY = 'test-key-123';
const server = spawn(loom, ['serve', '-m', model, '--host', '127.0.0.1', '--port', '0', '-c', '1024',
                            '--parallel', '4', '-t', '2', '--api-key', KEY, '--alias', 'tiny'],
                     { stdio: ['ignore', 'ignore', 'pipe'] });
const killTimer = setTimeout(() => { console.error('timeout'); server.kill('SIGKILL'); process.exit(1); }, 240000);

const url = await new Promise((resolve, reject) => {
  let buf = '';
  server.stderr.on('data', (d) => {
    buf += d.toString();
    const m = buf.match(/listening on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`loom serve exited (${code}): ${buf}`)));
});

async function waitReady() {
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(url + '/health');
      if (r.status === 200) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server not ready');
}

let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

try {
  await waitReady();
  const client = new OpenAI({ baseURL: url + '/v1', apiKey: KEY, maxRetries: 0 });
  const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hello.' }];
  const req = { model: 'tiny', messages, max_tokens: 12, temperature: 0, seed: 7 };
  let plain;

  await check('models.list', async () => {
    const list = await client.models.list();
    assert.equal(list.data[0].id, 'tiny');
  });

  await check('chat, not streamed', async () => {
    plain = await client.chat.completions.create(req);
    assert.equal(plain.object, 'chat.completion');
    assert.equal(plain.choices[0].message.role, 'assistant');
    assert.equal(typeof plain.choices[0].message.content, 'string');
    assert.ok(['stop', 'length'].includes(plain.choices[0].finish_reason));
    assert.ok(plain.usage.completion_tokens > 0);
    assert.equal(plain.usage.total_tokens, plain.usage.prompt_tokens + plain.usage.completion_tokens);
  });

  await check('chat, streamed (same text as not streamed)', async () => {
    const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
    let text = '', role = null, finish = null, usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        if (c.delta.role) role = c.delta.role;
        if (c.delta.content) text += c.delta.content;
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(role, 'assistant');
    assert.equal(text, plain.choices[0].message.content);
    assert.equal(finish, plain.choices[0].finish_reason);
    assert.equal(usage.completion_tokens, plain.usage.completion_tokens);
  });

  await check('completions, n=2', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 6, n: 2, temperature: 0 });
    assert.equal(r.choices.length, 2);
    assert.equal(r.choices[0].text, r.choices[1].text);  // greedy: both choices agree
  });

  await check('bad value -> BadRequestError', async () => {
    await assert.rejects(client.chat.completions.create({ ...req, temperature: 5 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e.constructor.name}`);
      assert.equal(e.status, 400);
      assert.match(e.message, /temperature/);
      assert.equal(e.param, 'temperature');
      return true;
    });
  });

  await check('unknown model -> NotFoundError', async () => {
    await assert.rejects(client.chat.completions.create({ ...req, model: 'gpt-nope' }), OpenAI.NotFoundError);
  });

  await check('wrong key -> AuthenticationError', async () => {
    const bad = new OpenAI({ baseURL: url + '/v1', apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
  });
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e.stack || e}`);
} finally {
  server.kill('SIGTERM');
  clearTimeout(killTimer);
}
process.exit(failed ? 1 : 0);
