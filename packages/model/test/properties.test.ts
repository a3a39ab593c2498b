// Properties over random command sequences (fast-check): evolve∘decide keeps the invariants, replay gives the
// same hash, the hash ignores key order.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import type { JournalEvent } from '@thinjournal/spec';
import {
  decide, evolve, initialState, replay, stateHash, toPlain, fromPlain, Projection, TRANSACTIONAL_EVENTS,
  type Command, type State,
} from '../src/index.js';
import { initCommand, UUID } from './helpers.js';

const G = 1024 ** 3;
// Mostly valid inputs (so sequences get somewhere), sometimes bad ones (which must be refused, state unchanged).
const hashArb = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('', 'a', 'b', 'c', 'd', 'e', 'f') },
  { weight: 1, arbitrary: fc.constantFrom('a/b', '..', 'base', '', 'x'.repeat(256)) },
);
const pathArb = fc.oneof({ weight: 8, arbitrary: fc.constantFrom('/mnt/1', '/mnt/2', '/mnt/3') }, { weight: 1, arbitrary: fc.constantFrom('rel', '/a/../b') });
const sizeArb = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(undefined, 0, 10 * G, 20 * G) }, { weight: 1, arbitrary: fc.constantFrom(5 * G, -1, NaN, 1000) });
const boolArb = fc.option(fc.boolean(), { nil: undefined });
const openArb = fc.constantFrom(undefined, 0, 1);

type Step = { kind: 'cmd'; cmd: Command } | { kind: 'commit' } | { kind: 'rollback' };

const cmdArb: fc.Arbitrary<Command> = fc.oneof(
  fc.constant(initCommand(['dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true'])),
  fc.record({ type: fc.constant('createBaseImage' as const), size: fc.constantFrom(10 * G, 0), fs: fc.constantFrom('xfs' as const, 'ext4' as const), uuid: fc.constant(UUID) }),
  fc.record({ type: fc.constant('addDevice' as const), hash: hashArb, baseHash: hashArb, size: sizeArb }),
  fc.record({ type: fc.constant('addDevice' as const), hash: hashArb, baseHash: hashArb, usage: fc.constant({ dataUsed: 95, dataTotal: 100, metadataUsed: 1, metadataTotal: 100 }) }),
  fc.record({ type: fc.constant('createDevice' as const), hash: hashArb, size: sizeArb.map((s) => s ?? G) }),
  fc.record({ type: fc.constant('deleteDevice' as const), hash: hashArb, syncDelete: boolArb, busy: boolArb, deferredDeletion: boolArb }),
  fc.record({ type: fc.constant('retryDeferredDeletion' as const), hash: hashArb, busy: boolArb }),
  fc.record({ type: fc.constant('activateDevice' as const), hash: hashArb }),
  fc.record({ type: fc.constant('deactivateDevice' as const), hash: hashArb, openCount: openArb, deferredRemoval: boolArb }),
  fc.record({ type: fc.constant('mountDevice' as const), hash: hashArb, path: pathArb }),
  fc.record({ type: fc.constant('unmountDevice' as const), hash: hashArb, path: pathArb, openCount: openArb, deactivate: boolArb }),
  fc.record({ type: fc.constant('resizePool' as const), dataSize: fc.constantFrom(100 * G, 200 * G, 50 * G, 300 * G) }),
  fc.record({ type: fc.constant('resizeDevice' as const), hash: hashArb, size: fc.constantFrom(10 * G, 20 * G, 40 * G, 5 * G) }),
  // attachPoolDevices shares the read-only `list`'s slot, so the other commands keep their frequencies (the
  // rarer event types below must still show up in every run).
  fc.oneof(
    fc.record({ type: fc.constant('list' as const) }),
    fc.record({ type: fc.constant('attachPoolDevices' as const), dataDevice: fc.constantFrom('/dev/loop0', '/dev/loop2', 'bad\n'), metadataDevice: fc.constantFrom('/dev/loop1', '/dev/loop3') }),
  ),
) as fc.Arbitrary<Command>;

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: cmdArb.map((cmd) => ({ kind: 'cmd' as const, cmd })) },
  { weight: 3, arbitrary: fc.constant({ kind: 'commit' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'rollback' as const }) },
);

/** The structural invariants every reachable state keeps. Throws with a description when one breaks. */
function checkInvariants(s: State): void {
  const ids = new Set<number>();
  const children = new Map<string, number>();
  for (const [h, d] of s.devices) {
    assert.is(d.hash, h);
    assert.not.ok(ids.has(d.deviceId), `device id ${d.deviceId} unique`);
    ids.add(d.deviceId);
    assert.ok(d.deviceId >= 0 && d.deviceId <= 0xffffff);
    assert.is(s.deviceIds.get(d.deviceId), h, 'id index');
    if (d.parentHash !== null) {
      assert.ok(s.devices.has(d.parentHash), `parent ${d.parentHash} of ${h} exists`);
      children.set(d.parentHash, (children.get(d.parentHash) ?? 0) + 1);
    }
    if (d.mounts.length) assert.ok(d.active && !d.removalDeferred, `mounted ${h} is active`);
    if (d.removalDeferred) assert.ok(d.active);
    assert.is(d.dmName !== null, d.active, 'dm name iff active');
    assert.ok(d.txId <= s.txId);
  }
  assert.is(s.deviceIds.size, s.devices.size, 'no stray ids');
  assert.equal([...s.childCounts.entries()].sort(), [...children.entries()].sort(), 'child index');
  assert.equal(s.deferredDeletions, [...s.devices.values()].filter((d) => d.deletionDeferred).map((d) => d.hash).sort());
  if (s.base) {
    const b = s.devices.get(s.base.hash);
    assert.ok(b && b.deviceId === s.base.deviceId, 'the base device exists with its id');
  }
}

interface Run { state: State; log: JournalEvent[] }

/** Event types produced across all runs: the generator must reach every kind of event. */
const seenTypes = new Map<string, number>();

function runSteps(steps: Step[]): Run {
  let s = initialState;
  const log: JournalEvent[] = [];
  let base: State['base'] = null;
  const idsEverAllocated = new Set<number>();
  let lastCursor = 0;
  const apply = (e: JournalEvent) => {
    s = evolve(s, e);
    log.push(e);
    seenTypes.set(e.type, (seenTypes.get(e.type) ?? 0) + 1);
  };
  for (const step of steps) {
    const before = s;
    if (step.kind !== 'cmd') {
      if (!s.pending) continue;
      const txId = s.pending.txId;
      apply(step.kind === 'commit' ? { type: 'TransactionCommitted', txId, body: {} } : { type: 'TransactionRolledBack', txId, body: { reason: 'random' } });
      // txId strictly increases by one per committed mutating command, and not at all on rollback
      assert.is(s.txId, step.kind === 'commit' ? before.txId + 1 : before.txId);
    } else {
      let events: readonly JournalEvent[];
      const h0 = stateHash(before);
      try {
        events = decide(s, step.cmd);
      } catch (e) {
        assert.ok(typeof (e as { code?: unknown }).code === 'string', `coded error, got ${(e as Error).stack}`);
        assert.is(stateHash(s), h0, 'refused: state unchanged');
        continue;
      }
      const T = s.txId;
      const transactional = events.some((e) => e.type === 'TransactionBegan');
      if (transactional) {
        assert.is(events[0]!.type, 'TransactionBegan');
        for (const e of events) assert.is(e.txId, T + 1, `${e.type} stamped T+1`);
        for (const e of events.slice(1)) assert.ok(TRANSACTIONAL_EVENTS.has(e.type));
      } else if (step.cmd.type !== 'initPool') {
        for (const e of events) {
          assert.is(e.txId, T, `${e.type} carries the current txId`);
          assert.not.ok(TRANSACTIONAL_EVENTS.has(e.type));
        }
      }
      for (const e of events) apply(e); // decided events always apply
      if (!transactional && step.cmd.type !== 'initPool') assert.is(s.txId, T);
      for (const e of events) {
        const id = (e.body as { deviceId?: number }).deviceId;
        if (id !== undefined && (e.type === 'DeviceCreated' || e.type === 'SnapshotCreated' || e.type === 'BaseImageCreated')) {
          assert.not.ok(idsEverAllocated.has(id), `device id ${id} never handed out twice (no wrap in a short run)`);
          idsEverAllocated.add(id);
        }
      }
    }
    assert.ok(s.nextDeviceId >= lastCursor, 'the id cursor never goes back');
    lastCursor = s.nextDeviceId;
    checkInvariants(s);
    // base image immutable once created
    if (base) assert.equal(s.base, base);
    else if (s.base) base = s.base;
  }
  return { state: s, log };
}

test('evolve∘decide keeps the invariants over random command sequences', () => {
  const wanted = ['SnapshotCreated', 'DeviceCreated', 'DeviceDeleted', 'DeletionDeferred', 'DeviceActivated', 'DeviceDeactivated',
    'DeviceMounted', 'DeviceUnmounted', 'PoolResized', 'DeviceResized', 'PoolDevicesAttached', 'TransactionCommitted', 'TransactionRolledBack'];
  // The rarest types (DeletionDeferred, DeviceUnmounted) show up a few times per 300 runs, so one batch missed
  // one of them about once in 20; further batches run only while a type is still missing.
  for (let batch = 0; batch < 6 && (batch === 0 || wanted.some((t) => !seenTypes.has(t))); batch++) {
    fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'large' }), (steps) => {
      runSteps([{ kind: 'cmd', cmd: initCommand(['dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true']) },
        { kind: 'cmd', cmd: { type: 'createBaseImage', size: 10 * G, fs: 'xfs', uuid: UUID } }, { kind: 'commit' }, ...steps]);
    }), { numRuns: 300 });
  }
  for (const t of wanted) {
    assert.ok((seenTypes.get(t) ?? 0) > 0, `the random sequences produced ${t} (${JSON.stringify([...seenTypes])})`);
  }
});

test('replaying the emitted events from empty gives the same stateHash (evolve and Projection alike)', () => {
  fc.assert(fc.property(fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'large' }), (steps) => {
    const { state, log } = runSteps([{ kind: 'cmd', cmd: initCommand() }, { kind: 'cmd', cmd: { type: 'createBaseImage', size: 10 * G, fs: 'ext4', uuid: UUID } }, ...steps]);
    const h = stateHash(state);
    assert.is(stateHash(replay(log)), h);
    assert.is(stateHash(log.reduce(evolve, initialState)), h);
    // split replay at a random point through a checkpoint (plain form) gives the same hash
    const cut = Math.floor(log.length / 2);
    const mid = fromPlain(JSON.parse(JSON.stringify(toPlain(replay(log.slice(0, cut))))));
    const p = new Projection(mid);
    p.applyAll(log.slice(cut));
    assert.is(stateHash(p.state), h);
  }), { numRuns: 200 });
});

test('stateHash is stable across object key order and device order', () => {
  const reorder = (o: unknown, rnd: () => number): unknown => {
    if (Array.isArray(o)) return o.map((x) => reorder(x, rnd));
    if (o && typeof o === 'object') {
      const entries = Object.entries(o).sort(() => rnd() - 0.5);
      return Object.fromEntries(entries.map(([k, v]) => [k, reorder(v, rnd)]));
    }
    return o;
  };
  fc.assert(fc.property(fc.array(stepArb, { maxLength: 60, size: 'large' }), fc.integer(), (steps, seed) => {
    const { state } = runSteps([{ kind: 'cmd', cmd: initCommand() }, { kind: 'cmd', cmd: { type: 'createBaseImage', size: 10 * G, fs: 'xfs', uuid: UUID } }, { kind: 'commit' }, ...steps]);
    let x = seed >>> 0 || 1;
    const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const plain = toPlain(state);
    const shuffled = reorder({ ...plain, devices: [...plain.devices].sort(() => rnd() - 0.5) }, rnd);
    assert.is(stateHash(fromPlain(shuffled)), stateHash(state));
  }), { numRuns: 150 });
});

test.run();
