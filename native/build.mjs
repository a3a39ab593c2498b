// Builds the addon with node-gyp against the running Node's own headers: never downloads them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
const env = { ...process.env };
if (!env.npm_config_nodedir) env.npm_config_nodedir = path.dirname(path.dirname(process.execPath));
if (!existsSync(path.join(env.npm_config_nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`native: no Node headers under ${env.npm_config_nodedir}/include/node; set npm_config_nodedir`);
  process.exit(1);
}
console.log('native: (placeholder) nothing to build yet');
