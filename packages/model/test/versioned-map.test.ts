// VersionedMap: every snapshot keeps reading the map as it was when taken, however many writes and later
// snapshots follow, and iterating one while the live map changes sees the old entries.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VersionedMap, FrozenMap } from '../src/versioned-map.js';
import { Projection, decide, stateHash, initialState } from '../src/index.js';
import { withBase } from './helpers.js';

function sorted(m: ReadonlyMap<number, string>): [number, string][] {
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

test('random writes against retained snapshots: each reads as a copy taken at the same moment', () => {
  let rnd = 7;
  const next = (n: number) => ((rnd = (rnd * 1103515245 + 12345) >>> 0) % n);
  const live = new VersionedMap<number, string>();
  const kept: { snap: FrozenMap<number, string>; copy: Map<number, string> }[] = [];
  for (let step = 0; step < 4000; step++) {
    const k = next(60);
    const r = next(10);
    if (r < 5) live.set(k, `v${step}`);
    else if (r < 8) live.delete(k);
    else if (r < 9) {
      const snap = live.snapshot();
      kept.push({ snap, copy: new Map(live) });
      if (kept.length > 40) kept.splice(next(kept.length), 1); // drop one: the chain must not depend on all being held
    } else if (step % 500 === 0) live.clear();
    if (step % 97 === 0) {
      for (const { snap, copy } of kept) {
        assert.is(snap.size, copy.size);
        assert.equal(sorted(snap), sorted(copy));
        for (let q = 0; q < 60; q++) {
          assert.is(snap.get(q), copy.get(q));
          assert.is(snap.has(q), copy.has(q));
        }
      }
    }
  }
  assert.ok(kept.length > 10);
  assert.equal(sorted(live.snapshot()), sorted(new Map(live)));
});

test('a snapshot with nothing written since is the same version; a write makes a new one', () => {
  const live = new VersionedMap<string, number>([['a', 1]]);
  const s1 = live.snapshot();
  assert.is(live.snapshot(), s1);
  live.set('b', 2);
  const s2 = live.snapshot();
  assert.is.not(s2, s1);
  assert.equal([...s1.keys()], ['a']);
  assert.equal([...s2.keys()].sort(), ['a', 'b']);
  assert.is(live.delete('zzz'), false);
  assert.is(live.snapshot(), s2); // a delete of an absent key writes nothing
});

test('iterating a snapshot across writes to the live map sees the snapshot only', () => {
  const live = new VersionedMap<number, string>();
  for (let i = 0; i < 100; i++) live.set(i, `a${i}`);
  const s = live.snapshot();
  const seen: [number, string][] = [];
  for (const [k, v] of s) {
    seen.push([k, v]);
    live.delete(k);
    live.set(k + 1000, 'new');
  }
  assert.is(seen.length, 100);
  assert.equal(seen.sort((a, b) => a[0] - b[0]), Array.from({ length: 100 }, (_, i) => [i, `a${i}`]));
  assert.is(s.size, 100);
  assert.is(s.get(5), 'a5');
  assert.is(s.get(1005), undefined);
});

test('Projection: a state read before later operations keeps its devices and its hash', () => {
  const h = withBase();
  const p = new Projection(h.state);
  const run = (cmd: Parameters<typeof decide>[1]) => {
    h.op(cmd); // the pure reference, beside the projection
    for (const e of p.peek((s) => decide(s, cmd))) p.apply(e);
    if (p.peek((s) => s.pending) !== null) p.apply({ type: 'TransactionCommitted', txId: p.peek((s) => s.pending!.txId), body: {} });
  };
  run({ type: 'addDevice', hash: 'a', baseHash: '' });
  const before = p.state;
  const hashBefore = stateHash(before);
  const devicesBefore = [...before.devices.keys()].sort();
  run({ type: 'addDevice', hash: 'b', baseHash: 'a' });
  run({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  const middle = p.state;
  run({ type: 'unmountDevice', hash: 'a', path: '/mnt/a' });
  run({ type: 'deleteDevice', hash: 'b', syncDelete: true });
  assert.is(stateHash(before), hashBefore);
  assert.equal([...before.devices.keys()].sort(), devicesBefore);
  assert.is(before.devices.get('b'), undefined);
  assert.is(middle.devices.get('a')!.mounts[0]!.path, '/mnt/a');
  assert.ok(middle.devices.has('b'));
  assert.is(p.state.devices.has('b'), false);
  // the projection's state hashes as the pure reference's after the same commands
  assert.is(stateHash(p.state), stateHash(h.state));
  assert.is.not(stateHash(p.state), stateHash(initialState));
});

test.run();
