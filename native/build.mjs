// Builds the addon with node-gyp against the running Node's own headers: never downloads them.
// npm_config_nodedir (when unset) points at the running Node's prefix, which ships include/node.
//
// One build at a time: pnpm can start this script twice at once (for the workspace project and for the
// same directory linked as a dependency), and two `node-gyp rebuild`s in one build/ directory delete each
// other's files. A lock directory (mkdir is atomic) serialises them; a build that had to wait for another
// one to finish reuses its result instead of rebuilding again.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = { ...process.env };
if (!env.npm_config_nodedir) env.npm_config_nodedir = path.dirname(path.dirname(process.execPath));
if (!existsSync(path.join(env.npm_config_nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`native: no Node headers under ${env.npm_config_nodedir}/include/node; set npm_config_nodedir`);
  process.exit(1);
}

const lock = path.join(here, '.build.lock');
const product = path.join(here, 'build', 'Release', 'thinjournal_native.node');

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

async function acquire() {
  let waited = false;
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      writeFileSync(path.join(lock, 'pid'), String(process.pid));
      return waited;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
    }
    let owner = NaN;
    try {
      owner = Number(readFileSync(path.join(lock, 'pid'), 'utf8'));
    } catch {}
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      rmSync(lock, { recursive: true, force: true }); // left by a build that died
      continue;
    }
    if (i > 0 && i % 20 === 0) console.log('native: waiting for another build of the addon to finish');
    waited = true;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const waited = await acquire();
let status = 1;
try {
  if (waited && existsSync(product)) {
    console.log('native: another build just finished; using its result');
    status = 0;
  } else {
    const require = createRequire(import.meta.url);
    const gyp = require.resolve('node-gyp/bin/node-gyp.js');
    const args = [gyp, 'rebuild', `--nodedir=${env.npm_config_nodedir}`];
    if (process.env.THINJOURNAL_NATIVE_DEBUG) args.push('--debug');
    const r = spawnSync(process.execPath, args, { cwd: here, env, stdio: 'inherit' });
    if (r.error) console.error(`native: could not run node-gyp: ${r.error.message}`);
    status = r.status ?? 1;
  }
} finally {
  rmSync(lock, { recursive: true, force: true });
}
process.exit(status);
