// Builds the addon with node-gyp against the running Node's own headers: never downloads them.
// npm_config_nodedir (when unset) points at the running Node's prefix, which ships include/node.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
const require = createRequire(import.meta.url);
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
const args = [gyp, 'rebuild', `--nodedir=${env.npm_config_nodedir}`];
if (process.env.THINJOURNAL_NATIVE_DEBUG) args.push('--debug');
const r = spawnSync(process.execPath, args, { cwd: here, env, stdio: 'inherit' });
if (r.error) { console.error(`native: could not run node-gyp: ${r.error.message}`); process.exit(1); }
process.exit(r.status ?? 1);
