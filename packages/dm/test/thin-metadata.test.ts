// readThinMetadataFile against thin_dump, on metadata files thin_restore writes (one leaf, and enough devices
// for internal nodes), and on files that are not thin metadata.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseThinDump, readThinMetadataFile } from '../src/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tjmd-'));
const hasTools = (() => {
  try {
    execFileSync('thin_restore', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

function restore(name: string, ids: number[], txId: number, blockSectors: number, dataBlocks: number): string {
  const xml = [`<superblock uuid="" time="1" transaction="${txId}" version="2" data_block_size="${blockSectors}" nr_data_blocks="${dataBlocks}">`,
    ...ids.map((id) => `  <device dev_id="${id}" mapped_blocks="0" transaction="0" creation_time="0" snap_time="0">\n  </device>`), '</superblock>', ''].join('\n');
  const x = path.join(dir, `${name}.xml`);
  const f = path.join(dir, `${name}.bin`);
  writeFileSync(x, xml);
  writeFileSync(f, '');
  truncateSync(f, 16 << 20);
  execFileSync('thin_restore', ['-i', x, '-o', f]);
  return f;
}

if (!hasTools) {
  console.log('thin metadata reader tests skipped: thin_restore (thin-provisioning-tools) is not installed');
  test.skip('readThinMetadataFile against thin_dump', () => {});
} else {
  test('as thin_dump reads it: transaction id, thin ids, data block size and data blocks; one leaf and internal nodes', async () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const [name, n] of [['empty', 0], ['one', 1], ['leaf', 100], ['tree', 700]] as const) {
      const ids = new Set<number>();
      while (ids.size < n) ids.add(Math.floor(rnd() * (2 ** 24 - 1)));
      const f = restore(name, [...ids], 40 + n, 256, 81920);
      const mine = await readThinMetadataFile(f);
      assert.equal(mine, parseThinDump(execFileSync('thin_dump', ['--skip-mappings', f]).toString()), name);
      assert.is(mine.ids.length, n);
      assert.is(mine.dataBlockSectors, 256);
      assert.is(mine.dataBlocks, 81920);
    }
  });
}

test('a file that is not thin metadata: ERR_DM_STATUS naming the file and the block', async () => {
  const zeros = path.join(dir, 'zeros');
  writeFileSync(zeros, Buffer.alloc(8192));
  const short = path.join(dir, 'short');
  writeFileSync(short, 'x');
  for (const f of [zeros, short]) {
    try {
      await readThinMetadataFile(f);
      assert.unreachable('read garbage as metadata');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_DM_STATUS');
      assert.match((err as Error).message, new RegExp(`${f}: thin metadata block 0`));
    }
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
