/**
 * The plan executor's cases, run on both backends: ModelBackend here (plan.test.ts, the TypeScript executor)
 * and KernelBackend in the guest (test/src/kernel/executor.kernel.test.ts, the native executor). Same plans,
 * same expected outcomes, progress events and errnos: the two executors give every guard one meaning.
 */
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { errnoOf, thinPoolTable, thinTable, type Backend, type ExecStep, type PlanProgress } from '../src/index.js';

/** The transaction id and thin ids of pool metadata (its geometry is asserted where it is the point). */
const txAndIds = (m: { transactionId: number; ids: number[] }) => ({ transactionId: m.transactionId, ids: m.ids });

const MiB = 1 << 20;

/** What a case needs besides the backend (KernelHarness and a model harness both fit). */
export interface PlanFixture {
  readonly backend: Backend;
  name(suffix: string): string;
  makeFile(bytes: number): Promise<string>;
  makeDir(): Promise<string>;
  cleanup(): Promise<void>;
}

async function pool(f: PlanFixture) {
  const b = f.backend;
  const metaDev = await b.attachLoop(await f.makeFile(16 * MiB));
  const dataDev = await b.attachLoop(await f.makeFile(64 * MiB));
  await b.zeroRange(metaDev, 0, 4096);
  const name = f.name('pool');
  const spec = { metadataDevice: metaDev, dataDevice: dataDev, lengthSectors: 64 * 2048, dataBlockSectors: 128, lowWaterMarkBlocks: 16 };
  await b.createPool(name, spec);
  return { pool: name, spec };
}

async function run(b: Backend, steps: ExecStep[]) {
  const events: PlanProgress[] = [];
  const r = await b.executePlan(steps, (p) => events.push(p));
  return { ...r, events };
}

export function definePlanCases(test: Test, fixture: () => Promise<PlanFixture>): void {
  const add = (name: string, fn: (f: PlanFixture) => Promise<void>) =>
    test(name, async () => {
      const f = await fixture();
      try {
        await fn(f);
      } finally {
        await f.cleanup();
      }
    });

  add('plan: each step runs while its guard says "not done", and the same plan again is all skipped', async (f) => {
    const b = f.backend;
    const { pool: p } = await pool(f);
    await b.createThin(p, 0);
    await b.createThin(p, 1);
    const t0 = f.name('t0');
    const t1 = f.name('t1');
    await b.activateThin(t1, { poolDevice: b.devicePath(p), id: 1, lengthSectors: 2048 });
    await b.suspend(t1);
    const steps: ExecStep[] = [
      { kind: 'createDevice', name: t0, table: [thinTable({ poolDevice: b.devicePath(p), id: 0, lengthSectors: 8 * 2048 })], guard: 'device-absent' },
      { kind: 'resumeDevice', name: t1, guard: 'suspended' },
      { kind: 'removeDevice', name: t1, guard: 'device-present' },
      { kind: 'deleteThin', pool: p, deviceId: 1, guard: 'thin-present' },
      { kind: 'setTransactionId', pool: p, from: 0, to: 1, guard: 'txid-is-from' },
    ];
    const r1 = await run(b, steps);
    assert.equal(r1.outcomes, ['done', 'done', 'done', 'done', 'done']);
    assert.equal([r1.completed, r1.skipped, r1.failed], [5, 0, null]);
    assert.equal(r1.events.map((e) => [e.index, e.kind, e.outcome]), steps.map((s, i) => [i, s.kind, 'done']));
    assert.ok((await b.info(t0))?.activeTable);
    assert.is(await b.info(t1), null);
    assert.equal(txAndIds(await b.poolMetadata(p)), { transactionId: 1, ids: [0] });
    // Everything is done: a repeat (recovery run twice) changes nothing.
    const r2 = await run(b, steps);
    assert.equal(r2.outcomes, ['skipped', 'skipped', 'skipped', 'skipped', 'skipped']);
    assert.equal([r2.completed, r2.skipped, r2.failed], [5, 5, null]);
    assert.equal(txAndIds(await b.poolMetadata(p)), { transactionId: 1, ids: [0] });
    // mount: not-mounted
    await b.mkfs(b.devicePath(t0), 'ext4');
    const dir = await f.makeDir();
    const m: ExecStep[] = [{ kind: 'mount', device: b.devicePath(t0), path: dir, fsType: 'ext4', guard: 'not-mounted' }];
    assert.equal((await run(b, m)).outcomes, ['done']);
    assert.ok(await b.mounted(dir));
    assert.equal((await run(b, m)).outcomes, ['skipped']);
    await b.umount(dir);
  });

  add('plan: stops at the first failure and names it with its errno; later steps do not run', async (f) => {
    const b = f.backend;
    const { pool: p } = await pool(f);
    await b.createThin(p, 0);
    const t0 = f.name('t0');
    const steps: ExecStep[] = [
      { kind: 'createDevice', name: t0, table: [thinTable({ poolDevice: b.devicePath(p), id: 0, lengthSectors: 2048 })], guard: 'device-absent' },
      // The pool is at 0, neither 5 nor 6: the kernel refuses the message (EINVAL), the executor does not guess.
      { kind: 'setTransactionId', pool: p, from: 5, to: 6, guard: 'txid-is-from' },
      { kind: 'removeDevice', name: t0, guard: 'device-present' },
    ];
    const r = await run(b, steps);
    assert.equal(r.outcomes, ['done']);
    assert.is(r.completed, 1);
    assert.is(r.failed?.index, 1);
    assert.is(r.failed?.step.kind, 'setTransactionId');
    assert.is(errnoOf(r.failed?.error), 'EINVAL');
    assert.equal(r.events.map((e) => [e.index, e.outcome, e.errnoName ?? null]), [[0, 'done', null], [1, 'failed', 'EINVAL']]);
    assert.ok(await b.info(t0), 'the step after the failure did not run');
    assert.is((await b.poolStatusOk(p)).transactionId, 0);
    // deleteThin of an id some table holds open: EBUSY is a failure, not "already done".
    const r2 = await run(b, [{ kind: 'deleteThin', pool: p, deviceId: 0, guard: 'thin-present' }]);
    assert.is(errnoOf(r2.failed?.error), 'EBUSY');
    await b.remove(t0);
  });

  add('plan: a device left without a live table (a create cut short) is completed by its createDevice step', async (f) => {
    const b = f.backend;
    const { pool: p, spec } = await pool(f);
    await b.createThin(p, 0);
    const t0 = f.name('t0');
    await b.create(t0, []); // DM_DEV_CREATE alone: what a process killed before its table load leaves
    const r = await run(b, [{ kind: 'createDevice', name: t0, table: [thinTable({ poolDevice: b.devicePath(p), id: 0, lengthSectors: 2048 })], guard: 'device-absent' }]);
    assert.equal(r.outcomes, ['done']);
    const i = await b.info(t0);
    assert.ok(i?.activeTable && !i.suspended);
    assert.is(await b.blockDeviceSize(b.devicePath(t0)), 2048 * 512);
    await b.remove(t0);
    // The pool's own table too (a reboot's re-creation cut short).
    await b.remove(p);
    await b.create(p, []);
    assert.equal((await run(b, [{ kind: 'createDevice', name: p, table: [thinPoolTable(spec)], guard: 'device-absent' }])).outcomes, ['done']);
    assert.equal(txAndIds(await b.poolMetadata(p)), { transactionId: 0, ids: [0] });
  });

  add('plan: invalid steps are refused before any step runs', async (f) => {
    const b = f.backend;
    const { pool: p } = await pool(f);
    await b.createThin(p, 0);
    const t0 = f.name('t0');
    const ok: ExecStep = { kind: 'createDevice', name: t0, table: [thinTable({ poolDevice: b.devicePath(p), id: 0, lengthSectors: 2048 })], guard: 'device-absent' };
    const bad = [ok, { kind: 'deleteThin', pool: p, deviceId: 0, guard: 'device-absent' }] as unknown as ExecStep[];
    let threw: unknown = null;
    await b.executePlan(bad).catch((e) => (threw = e));
    assert.instance(threw, TypeError);
    const badId = [ok, { kind: 'deleteThin', pool: p, deviceId: 2 ** 24, guard: 'thin-present' }] as ExecStep[];
    await b.executePlan(badId).then(() => assert.unreachable('refused'), (e) => assert.is((e as { code?: string }).code, 'ERR_DM_ARG'));
    assert.is(await b.info(t0), null, 'nothing ran');
    assert.equal((await run(b, [])).outcomes, []);
  });

  add('plan: createThin and createSnap (guard none) run in their place among guarded steps; an id that exists fails with EEXIST', async (f) => {
    const b = f.backend;
    const { pool: p } = await pool(f);
    const steps: ExecStep[] = [
      { kind: 'createThin', pool: p, deviceId: 0, guard: 'none' },
      { kind: 'setTransactionId', pool: p, from: 0, to: 1, guard: 'txid-is-from' },
      { kind: 'createSnap', pool: p, deviceId: 1, originId: 0, guard: 'none' },
      { kind: 'createThin', pool: p, deviceId: 2, guard: 'none' },
      { kind: 'deleteThin', pool: p, deviceId: 2, guard: 'thin-present' },
      { kind: 'setTransactionId', pool: p, from: 1, to: 2, guard: 'txid-is-from' },
    ];
    const r = await run(b, steps);
    assert.equal(r.outcomes, ['done', 'done', 'done', 'done', 'done', 'done']);
    assert.equal(r.events.map((e) => [e.index, e.kind, e.outcome]), steps.map((s, i) => [i, s.kind, 'done']));
    assert.equal(txAndIds(await b.poolMetadata(p)), { transactionId: 2, ids: [0, 1] });
    const again = await run(b, [{ kind: 'setTransactionId', pool: p, from: 2, to: 3, guard: 'txid-is-from' }, { kind: 'createThin', pool: p, deviceId: 1, guard: 'none' }]);
    assert.equal(again.outcomes, ['done']);
    assert.is(again.failed?.index, 1);
    assert.is(errnoOf(again.failed?.error), 'EEXIST');
    assert.equal(again.events.map((e) => [e.index, e.kind, e.outcome]), [[0, 'setTransactionId', 'done'], [1, 'createThin', 'failed']]);
  });
}
