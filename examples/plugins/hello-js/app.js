// hello-js: the plugin template in JavaScript (componentize-js), built unchanged against the
// `job-plugin` world of `wit/`. It uses no capability, so it loads with no grants.
//
// Build (what `just plugins` runs, with the pinned toolchain of `just plugin-toolchains`):
//
//   componentize-js examples/plugins/hello-js/app.js --wit wit -n job-plugin \
//       -o target/plugins/hello-js.wasm
import { log, progress } from 'jobhost:plugin/host@0.1.2';

// The `name` of a spec like {"name": "Ada"}; throws on anything else.
function nameOf(spec) {
  const value = JSON.parse(spec || '{}');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('the spec must be a JSON object');
  }
  const name = value.name ?? 'world';
  if (typeof name !== 'string' || name === '') {
    throw new Error('`name` must be a non-empty string');
  }
  return name;
}

export function describe() {
  return {
    name: 'hello-js',
    version: '0.1.0',
    jobTypes: ['hello-js'],
    description: 'Says hello (the JavaScript plugin template)',
    capabilities: [],
    specSchema: JSON.stringify({ type: 'object', properties: { name: { type: 'string' } } }),
  };
}

// `result<_, string>`: a thrown value becomes the error (componentize-js maps it).
export function validate(spec) {
  try {
    nameOf(spec);
  } catch (e) {
    throw `${e.message ?? e}`;
  }
}

export function run(job) {
  const name = nameOf(job.spec);
  log('info', `greeting ${name} (attempt ${job.attempt})`);
  progress(100, 'done');
  return { tag: 'completed', val: JSON.stringify({ greeting: `hello, ${name}`, language: 'javascript' }) };
}
