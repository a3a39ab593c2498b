// ModelBackend beyond the conformance suite: crash semantics, hazards, and a property test of the
// message rules against a minimal reference of dm-thin's metadata (a set of ids and a transaction id).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ModelBackend, errnoOf, type Backend } from '../src/index.js';

/** The transaction id and thin ids of pool metadata (its geometry is asserted where it is the point). */
const txAndIds = (m: { transactionId: number; ids: number[] }) => ({ transactionId: m.transactionId, ids: m.ids });

const MiB = 1 << 20;

async function pool(b: ModelBackend, name = 'pool') {
  b.addFile('/f/meta', 16 * MiB);
  b.addFile('/f/data', 64 * MiB);
  const metaDev = await b.attachLoop('/f/meta');
  const dataDev = await b.attachLoop('/f/data');
  await b.createPool(name, { metadataDevice: metaDev, dataDevice: dataDev, lengthSectors: 131072, dataBlockSectors: 128, lowWaterMarkBlocks: 10 });
  return { metaDev, dataDev };
}

async function errno(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return errnoOf(err) ?? (err as { code?: string }).code;
  }
  return undefined;
}

test('crash keeps every committed message and loses devices, loops, mounts and suspend state', async () => {
  const b = new ModelBackend();
  await pool(b);
  await b.createThin('pool', 0);
  await b.activateThin('t0', { poolDevice: '/dev/mapper/pool', id: 0, lengthSectors: 2048 });
  await b.mkfs('/dev/mapper/t0', 'xfs');
  b.mkdir('/mnt/t0');
  await b.mount('/dev/mapper/t0', '/mnt/t0', { fsType: 'xfs' });
  await b.snapshotActive('pool', 1, 0, 't0');
  await b.setTransactionId('pool', 0, 1);
  await b.suspend('t0');
  assert.is(await errno(b.setTransactionId('pool', 0, 9)), 'EINVAL'); // a failed message changes nothing
  b.crash();
  assert.equal(await b.listDevices(), []);
  assert.is(await b.mounted('/mnt/t0'), null);
  assert.is(await errno(b.loopBackingFile('/dev/loop0')), 'ENXIO');
  assert.is(await b.findLoop('/f/meta'), null, 'loop bindings are kernel memory');
  const meta = await b.attachLoop('/f/meta');
  const data = await b.attachLoop('/f/data');
  assert.equal(txAndIds(await b.readMetadata(meta)), { transactionId: 1, ids: [0, 1] });
  await b.createPool('pool', { metadataDevice: meta, dataDevice: data, lengthSectors: 131072, dataBlockSectors: 128, lowWaterMarkBlocks: 10 });
  assert.is((await b.poolStatusOk('pool')).transactionId, 1);
  await b.activateThin('s1', { poolDevice: '/dev/mapper/pool', id: 1, lengthSectors: 2048 });
  assert.is(await b.probeFsType('/dev/mapper/s1'), 'xfs', 'the snapshot shares the origin filesystem');
  assert.is((await b.info('s1'))!.suspended, false);
  assert.equal(b.hazards, []);
});

test('hazards: create_snap of an active, unsuspended origin is accepted (as the kernel does) and recorded', async () => {
  const b = new ModelBackend();
  await pool(b);
  await b.createThin('pool', 0);
  await b.activateThin('t0', { poolDevice: '/dev/mapper/pool', id: 0, lengthSectors: 2048 });
  await b.createSnap('pool', 1, 0);
  assert.is(b.hazards.length, 1);
  assert.match(b.hazards[0]!, /origin is active on t0 and not suspended/);
  await b.suspend('t0');
  await b.createSnap('pool', 2, 0);
  assert.is(b.hazards.length, 1, 'suspended origin: no hazard');
});

test('zeroing the metadata of a live pool is a hazard; without a pool it formats afresh', async () => {
  const b = new ModelBackend();
  const { metaDev } = await pool(b);
  await b.zeroRange(metaDev, 0, 4096);
  assert.is(b.hazards.length, 1);
  b.addFile('/f/junk', 16 * MiB);
  b.scribble('/f/junk');
  const junk = await b.attachLoop('/f/junk');
  b.addFile('/f/data2', 64 * MiB);
  const data2 = await b.attachLoop('/f/data2');
  assert.is(await errno(b.createPool('p2', { metadataDevice: junk, dataDevice: data2, lengthSectors: 131072, dataBlockSectors: 128, lowWaterMarkBlocks: 10 })), 'ENOTBLK');
  assert.is(await b.info('p2'), null);
});

test('filesystem uuids: kept across a crash; derived ones are canonical, distinct, and the same for the same calls', async () => {
  const run = async () => {
    const b = new ModelBackend();
    await pool(b);
    await b.createThin('pool', 0);
    await b.activateThin('t0', { poolDevice: '/dev/mapper/pool', id: 0, lengthSectors: 2048 });
    await b.mkfs('/dev/mapper/t0', 'ext4');
    const first = await b.fsUuid('/dev/mapper/t0');
    await b.mkfs('/dev/mapper/t0', 'xfs');
    return { b, first, second: await b.fsUuid('/dev/mapper/t0') };
  };
  const r1 = await run();
  const r2 = await run();
  assert.match(r1.first, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.is.not(r1.first, r1.second);
  assert.equal([r2.first, r2.second], [r1.first, r1.second]);
  const b = r1.b;
  await b.mkfs('/dev/mapper/t0', 'ext4', { uuid: 'c0ffee00-1234-4abc-8def-0123456789ab' });
  b.crash();
  const meta = await b.attachLoop('/f/meta');
  const data = await b.attachLoop('/f/data');
  assert.is(await b.findLoop('/f/meta'), meta);
  await b.createPool('pool', { metadataDevice: meta, dataDevice: data, lengthSectors: 131072, dataBlockSectors: 128, lowWaterMarkBlocks: 10 });
  await b.activateThin('t0', { poolDevice: '/dev/mapper/pool', id: 0, lengthSectors: 2048 });
  assert.is(await b.fsUuid('/dev/mapper/t0'), 'c0ffee00-1234-4abc-8def-0123456789ab');
  assert.is(await errno(b.fsUuid('/dev/mapper/nothing')), 'ENOENT');
});

type Op =
  | { k: 'create_thin'; id: number }
  | { k: 'create_snap'; id: number; origin: number }
  | { k: 'delete'; id: number }
  | { k: 'set_txid'; from: number; to: number }
  | { k: 'crash' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ k: fc.constant('create_thin' as const), id: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ k: fc.constant('create_snap' as const), id: fc.integer({ min: 0, max: 5 }), origin: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ k: fc.constant('delete' as const), id: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ k: fc.constant('set_txid' as const), from: fc.integer({ min: 0, max: 4 }), to: fc.integer({ min: 0, max: 4 }) }),
  fc.constant({ k: 'crash' as const }),
);

test('property: message outcomes and crash survival match the reference rules', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), async (ops) => {
      const b = new ModelBackend();
      await pool(b);
      const ids = new Set<number>();
      let txid = 0;
      const reopen = async (be: Backend) => {
        const meta = await be.attachLoop('/f/meta');
        const data = await be.attachLoop('/f/data');
        await be.createPool('pool', { metadataDevice: meta, dataDevice: data, lengthSectors: 131072, dataBlockSectors: 128, lowWaterMarkBlocks: 10 });
      };
      for (const op of ops) {
        let expect: string | undefined;
        let got: string | undefined;
        if (op.k === 'crash') {
          b.crash();
          await reopen(b);
          continue;
        } else if (op.k === 'create_thin') {
          expect = ids.has(op.id) ? 'EEXIST' : undefined;
          got = await errno(b.createThin('pool', op.id));
          if (!expect) ids.add(op.id);
        } else if (op.k === 'create_snap') {
          expect = ids.has(op.id) ? 'EEXIST' : !ids.has(op.origin) ? 'ENODATA' : undefined;
          got = await errno(b.createSnap('pool', op.id, op.origin));
          if (!expect) ids.add(op.id);
        } else if (op.k === 'delete') {
          expect = ids.has(op.id) ? undefined : 'ENODATA';
          got = await errno(b.deleteThin('pool', op.id));
          if (!expect) ids.delete(op.id);
        } else {
          expect = op.from === txid ? undefined : 'EINVAL';
          got = await errno(b.setTransactionId('pool', op.from, op.to));
          if (!expect) txid = op.to;
        }
        assert.is(got, expect, JSON.stringify(op));
      }
      assert.equal(txAndIds(await b.poolMetadata('pool')), { transactionId: txid, ids: [...ids].sort((x, y) => x - y) });
    }),
    { numRuns: 150 },
  );
});

test.run();
