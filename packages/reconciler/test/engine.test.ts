// Engine edges not covered by the crash matrix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Journal } from '@thinjournal/journal';
import { ModelBackend, runTool, type PoolMetadata } from '@thinjournal/dm';
import { Engine } from '../src/index.js';

const G = 2 ** 30, M = 2 ** 20;

test('recovery without thin-provisioning-tools: a clear ERR_FS_TOOL saying what to install, not a drift report', async () => {
  // The error the kernel backend's poolMetadata gives when thin_dump is not installed (a real spawn failure).
  const missing = await runTool('thinjournal-no-such-tool', []).then(() => null, (e: unknown) => e);
  assert.ok(missing, 'the tool is really missing');
  class NoTools extends ModelBackend {
    override async poolMetadata(): Promise<PoolMetadata> { throw missing; }
  }
  const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-engine-'));
  const backend = new NoTools();
  backend.addDisk('/dev/vdm', 64 * M);
  backend.addDisk('/dev/vdd', G);
  const journal = await Journal.open(path.join(base, 'j'));
  try {
    const e = await Engine.open(journal, backend);
    await e.execute({ type: 'initPool', poolName: 'p', devicePrefix: 'p', dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', loopback: false, dataSize: G, metadataSize: 64 * M, blockSize: 65536 });
    const head = journal.head().seq;
    try {
      await e.recover();
      assert.unreachable('recovered without the tools');
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ERR_FS_TOOL');
      assert.match((err as Error).message, /thin-provisioning-tools/);
    }
    assert.is(journal.head().seq, head, 'nothing journaled');
  } finally {
    await journal.close();
    rmSync(base, { recursive: true, force: true });
  }
});

test.run();
