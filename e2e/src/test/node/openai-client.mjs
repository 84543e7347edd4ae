// The official OpenAI client against a MoE Mesh gateway. Usage: node openai-client.mjs BASE_URL MODEL [API_KEY]
// Prints one JSON line per check and exits non-zero on the first failure, so the JUnit test can show why.
import OpenAI from 'openai';
import assert from 'node:assert/strict';

const [baseURL, model, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: apiKey ?? 'unused', maxRetries: 0, timeout: 120_000 });

async function check(name, fn) {
  try {
    const detail = await fn();
    console.log(JSON.stringify({ check: name, ok: true, detail }));
  } catch (e) {
    console.log(JSON.stringify({ check: name, ok: false, error: String(e?.stack ?? e) }));
    process.exit(1);
  }
}

await check('models', async () => {
  const list = await client.models.list();
  assert.ok(list.data.some((m) => m.id === model), `model ${model} listed`);
  return list.data.map((m) => m.id);
});

await check('model retrieve', async () => {
  const m = await client.models.retrieve(model);
  assert.equal(m.id, model);
  assert.equal(m.object, 'model');
  await assert.rejects(client.models.retrieve('no-such-model'), (e) => {
    assert.equal(e.status, 404);
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  // The client percent-encodes an id's '/' (mistralai%2FMixtral-...): still OpenAI's 404, not the container's 400.
  await assert.rejects(client.models.retrieve('mistralai/Mixtral-8x7B-Instruct-v0.1'), (e) => {
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    assert.match(e.message, /mistralai\/Mixtral-8x7B-Instruct-v0\.1/);
    return true;
  });
  return m.id;
});

await check('completion', async () => {
  const r = await client.completions.create({ model, prompt: 'gRPC', max_tokens: 16, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.completion_tokens, 16);
  assert.equal(r.choices[0].finish_reason, 'length');
  return r.choices[0].text;
});

await check('completion streamed joins to the non-streamed text', async () => {
  const whole = await client.completions.create({ model, prompt: 'Mixture of experts', max_tokens: 24, temperature: 0 });
  const stream = await client.completions.create({
    model, prompt: 'Mixture of experts', max_tokens: 24, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) text += chunk.choices[0].text;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(usage.completion_tokens, 24);
  return text;
});

await check('chat streamed joins to the non-streamed text', async () => {
  const messages = [{ role: 'user', content: 'What is a mixture of experts?' }];
  const whole = await client.chat.completions.create({ model, messages, max_tokens: 20, temperature: 0.8, seed: 7 });
  const stream = await client.chat.completions.create({ model, messages, max_tokens: 20, temperature: 0.8, seed: 7, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(whole.choices[0].message.role, 'assistant');
  return text;
});

await check('logprobs', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  assert.equal(r.choices[0].logprobs.content.length, 3);
  assert.equal(r.choices[0].logprobs.content[0].top_logprobs.length, 3);
  return r.choices[0].logprobs.content.map((t) => t.logprob);
});

await check('unknown model is a 404 NotFoundError', async () => {
  await assert.rejects(client.completions.create({ model: 'no-such-model', prompt: 'x' }), (e) => {
    assert.equal(e.status, 404);
    assert.ok(e instanceof OpenAI.NotFoundError);
    return true;
  });
});

await check('unsupported parameter is a 400 naming it', async () => {
  await assert.rejects(client.completions.create({ model, prompt: 'x', presence_penalty: 1 }), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.message, /presence_penalty/);
    return true;
  });
});

await check('unknown parameter is a 400 naming it', async () => {
  await assert.rejects(client.completions.create({ model, prompt: 'x', max_tokens: 1, temperatur: 0 }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'temperatur');
    assert.match(e.message, /Unrecognized request argument supplied: temperatur/);
    return true;
  });
});
