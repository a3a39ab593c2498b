// External oracles on a real kernel: `dmsetup status/table` (libdevmapper, a separate implementation of the
// ioctl protocol) must agree with our native path and parsers for the same devices, and the Debian
// thin-provisioning-tools (`thin_check`, `thin_ls`, `thin_dump`) must agree with the pool we built.
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTableLine, parseThinPoolStatus, parseThinPoolTable, parseThinStatus, parseThinTable } from '../../../packages/dm/dist/src/index.js';
import { makePool } from '../conformance/cases.js';
import { KernelHarness, kernelUnavailable } from './kernel-harness.js';

/** The transaction id and thin ids of pool metadata (its geometry is asserted where it is the point). */
const txAndIds = (m: { transactionId: number; ids: number[] }) => ({ transactionId: m.transactionId, ids: m.ids });

const run = promisify(execFile);

async function tool(name: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}

let why = await kernelUnavailable();
if (!why) {
  const missing = [];
  for (const t of ['dmsetup', 'thin_check', 'thin_ls', 'thin_dump']) if (!(await tool(t))) missing.push(t);
  if (missing.length) why = `missing ${missing.join(', ')} (apt-get install dmsetup thin-provisioning-tools)`;
}

async function dmsetup(...args: string[]): Promise<string> {
  return (await run('dmsetup', args, { env: { ...process.env, DM_DISABLE_UDEV: '1' } })).stdout;
}

if (why) {
  console.log(`kernel oracle tests skipped: ${why}`);
  test.skip('dmsetup and thin-provisioning-tools agree with us', () => {});
} else {
  test('dmsetup status/table agree with the native path and our parsers; thin_check/thin_ls/thin_dump agree with the pool', async () => {
    const h = await KernelHarness.create();
    const b = h.backend;
    try {
      const f = await makePool(h);
      await b.createThin(f.pool, 0);
      await b.setTransactionId(f.pool, 0, 1);
      const thin = h.name('t0');
      await b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 16 * 2048 });
      // write 1 MiB at the start and 64 KiB at 8 MiB so the thin maps blocks
      const fh = await open(b.devicePath(thin), 'r+');
      await fh.write(Buffer.alloc(1 << 20, 0x5a), 0, 1 << 20, 0);
      await fh.write(Buffer.alloc(65536, 0xa5), 0, 65536, 8 << 20);
      await fh.sync();
      await fh.close();
      await b.snapshotActive(f.pool, 1, 0, thin);
      await b.setTransactionId(f.pool, 1, 3);

      // pool: table and status, both ways
      const dsTable = parseTableLine((await dmsetup('table', f.pool)).trim());
      const ourTable = (await b.table(f.pool))[0]!;
      assert.is(dsTable.length, ourTable.length);
      assert.equal(parseThinPoolTable(dsTable.params), parseThinPoolTable(ourTable.params));
      const dsStatus = parseThinPoolStatus(parseTableLine((await dmsetup('status', f.pool)).trim()).params);
      const ourStatus = await b.poolStatus(f.pool);
      assert.equal(dsStatus, ourStatus);
      assert.ok(!ourStatus.failed && ourStatus.transactionId === 3 && ourStatus.usedDataBlocks >= 2);
      // thin: table and status
      assert.equal(parseThinTable(parseTableLine((await dmsetup('table', thin)).trim()).params), parseThinTable((await b.table(thin))[0]!.params));
      const dsThin = parseThinStatus(parseTableLine((await dmsetup('status', thin)).trim()).params);
      assert.equal(dsThin, await b.thinStatus(thin));
      assert.equal(dsThin, { state: 'active', mappedSectors: (1 << 20) / 512 + 128, highestMappedSector: (8 << 20) / 512 + 127 });
      // info: open count and suspend state as dmsetup sees them
      const infoLine = (await dmsetup('info', '-c', '--noheadings', '-o', 'name,open,suspended', f.pool)).trim();
      assert.is(infoLine, `${f.pool}:1:Active`);

      // the live pool's metadata through a metadata snapshot
      assert.equal(txAndIds(await b.poolMetadata(f.pool)), { transactionId: 3, ids: [0, 1] });

      // tear down, then the offline tools on the metadata device
      await b.remove(thin);
      await b.remove(f.pool);
      await run('thin_check', [f.metaDev]); // exit status 0 or it throws
      const ls = (await run('thin_ls', ['--no-headers', '-o', 'DEV,MAPPED_SECTORS', f.metaDev])).stdout;
      const rows = ls.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
      assert.equal(rows.map((r) => r[0]).sort(), [0, 1]);
      assert.equal(rows.find((r) => r[0] === 0)![1], dsThin.state === 'active' ? dsThin.mappedSectors : -1);
      assert.equal(txAndIds(await b.readMetadata(f.metaDev)), { transactionId: 3, ids: [0, 1] });
    } finally {
      await h.cleanup();
    }
  });
}
test.run();
