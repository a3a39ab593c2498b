// Engine edges not covered by the crash matrix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Journal } from '@thinjournal/journal';
import { ModelBackend, runTool, type PoolMetadata } from '@thinjournal/dm';
import { Engine } from '../src/index.js';
import { stateHash } from '@thinjournal/model';

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

test('checkpoints are spaced by at least as many records as there are devices (and by checkpointEvery)', async () => {
  const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-engine-'));
  const backend = new ModelBackend();
  backend.addDisk('/dev/vdm', 64 * M);
  backend.addDisk('/dev/vdd', 16 * G);
  let journal = await Journal.open(path.join(base, 'j'));
  try {
    const every = 4;
    const e = await Engine.open(journal, backend, { checkpointEvery: every });
    // the number of devices in the state at each head seq an operation ended on
    const devicesAt = new Map<number, number>();
    await e.execute({ type: 'initPool', poolName: 'p', devicePrefix: 'p', dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', loopback: false, dataSize: 16 * G, metadataSize: 64 * M, blockSize: 65536 });
    devicesAt.set(journal.head().seq, e.state.devices.size);
    await e.execute({ type: 'createBaseImage', size: G, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' });
    devicesAt.set(journal.head().seq, e.state.devices.size);
    for (let i = 0; i < 40; i++) {
      await e.execute({ type: 'addDevice', hash: `d${i}`, baseHash: '' });
      devicesAt.set(journal.head().seq, e.state.devices.size);
    }
    const seqs = (await journal.verify()).checkpoints.valid.slice().sort((a, b) => a - b);
    assert.ok(seqs.length >= 3, `checkpoints taken: ${seqs.join(', ')}`);
    let prev = 0;
    for (const seq of seqs) {
      const n = devicesAt.get(seq);
      assert.ok(n !== undefined, `checkpoint ${seq} is at the end of an operation`);
      assert.ok(seq - prev >= Math.max(every, n!), `checkpoint ${seq} follows ${prev} with ${n} devices`);
      prev = seq;
    }
    // once the devices outnumber checkpointEvery, the spacing grows with them
    assert.ok(seqs[seqs.length - 1]! - seqs[seqs.length - 2]! > every);
    const want = stateHash(e.state);
    await journal.close();
    journal = await Journal.open(path.join(base, 'j'));
    const again = await Engine.open(journal, backend);
    assert.is(stateHash(again.state), want, 'a reopen from the latest checkpoint rebuilds the same state');
  } finally {
    await journal.close();
    rmSync(base, { recursive: true, force: true });
  }
});

test.run();
