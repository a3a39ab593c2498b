'use strict';
// Loads the compiled addon. Every function but dmProbe returns a Promise and runs its system calls on a libuv
// worker thread; failures reject with an Error carrying `code` (errno name), `errno`, `syscall`,
// `device`/`path`. dmProbe is synchronous and returns its failure as a value (see index.d.ts).
const path = require('node:path');

function load() {
  const candidates = [
    path.join(__dirname, 'build', 'Release', 'thinjournal_native.node'),
    path.join(__dirname, 'build', 'Debug', 'thinjournal_native.node'),
  ];
  let firstError;
  for (const p of candidates) {
    try {
      return require(p);
    } catch (err) {
      if (err && err.code === 'MODULE_NOT_FOUND') continue;
      firstError = firstError || err;
    }
  }
  const err = new Error(
    `@thinjournal/native: the addon is not built (run \`node build.mjs\` in ${__dirname})` +
      (firstError ? `: ${firstError.message}` : ''),
  );
  err.code = 'ERR_NATIVE_NOT_BUILT';
  if (firstError) err.cause = firstError;
  throw err;
}

module.exports = load();
