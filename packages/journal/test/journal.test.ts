import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { firstValueFrom, take, toArray } from 'rxjs';
import { ClassicLevel } from 'classic-level';
import { chunkKey, packr, META_KEY, type JournalEvent } from '@thinjournal/spec';
import { Journal } from '../src/index.js';
import { tmpdir, created, raw, expectCode } from './helpers.js';

test('append resolves with contiguous seqs; read, iterate and head agree; reopen keeps everything', async () => {
  const { dir, cleanup } = tmpdir('basic');
  try {
    let t = 1_000;
    const j = await Journal.open(dir, { clock: () => (t += 10), actor: 'tester' });
    assert.equal(j.head().seq, 0);
    const a = await j.append([created(0), created(1)]);
    const b = await j.append([{ ...created(2), actor: 'dockerd', reason: 'docker run' }]);
    assert.equal([...a, ...b].map((r) => r.seq), [1, 2, 3]);
    assert.is(a[0]!.actor, 'tester');
    assert.is(b[0]!.actor, 'dockerd');
    assert.is(b[0]!.reason, 'docker run');
    assert.is(a[1]!.prev, a[0]!.hash, 'chained');
    assert.is(b[0]!.prev, a[1]!.hash, 'chained across commits');
    assert.equal(j.head(), { seq: 3, hash: b[0]!.hash });
    const all = await j.read();
    assert.equal(all, [...a, ...b]);
    assert.equal((await j.read({ fromSeq: 2, toSeq: 2 })).map((r) => r.seq), [2]);
    assert.equal((await j.read({ since: b[0]!.ts })).map((r) => r.seq), [3]);
    assert.equal((await j.read({ until: a[0]!.ts })).map((r) => r.seq), [1, 2]);
    assert.equal((await j.read({ limit: 2 })).map((r) => r.seq), [1, 2]);
    await j.close();
    const k = await Journal.open(dir);
    assert.equal(k.head(), { seq: 3, hash: b[0]!.hash });
    assert.equal(await k.read(), all);
    const c = await k.append([created(3)]);
    assert.is(c[0]!.seq, 4);
    assert.is(c[0]!.prev, b[0]!.hash);
    assert.ok(c[0]!.ts >= b[0]!.ts, 'ts never goes back');
    assert.ok((await k.verify()).result.ok);
    await k.close();
  } finally { cleanup(); }
});

test('10,000 concurrent appends: contiguous seqs in call order, nothing lost, group-committed', async () => {
  const { dir, cleanup } = tmpdir('concurrent');
  try {
    const j = await Journal.open(dir);
    const results = await Promise.all(Array.from({ length: 10_000 }, (_, i) => j.append([created(i)])));
    assert.equal(results.map((r) => r[0]!.seq), Array.from({ length: 10_000 }, (_, i) => i + 1));
    assert.equal(results.map((r) => r[0]!.body.hash), Array.from({ length: 10_000 }, (_, i) => `dev-${i}`));
    assert.ok(j.commits < 100, `merged into few commits (${j.commits})`);
    await j.close();
    const k = await Journal.open(dir);
    const seen: number[] = [];
    assert.is(await k.forEach((r) => seen.push(r.seq)), 10_000);
    assert.equal(seen, Array.from({ length: 10_000 }, (_, i) => i + 1));
    const v = await k.verify();
    assert.ok(v.result.ok && v.result.records === 10_000, JSON.stringify(v.result));
    await k.close();
  } finally { cleanup(); }
});

test('sync: false appends are written but share the next sync; a process kill keeps them', async () => {
  const { dir, cleanup } = tmpdir('nosync');
  try {
    const j = await Journal.open(dir);
    await j.append([created(0)]);
    assert.is(j.syncs, 1);
    const [r] = await j.append([{ type: 'TransactionCommitted', txId: 1, body: {} }], { sync: false });
    assert.is(r!.seq, 2);
    assert.is(j.syncs, 1, 'no sync for the outcome record');
    assert.is(j.commits, 2);
    // concurrent: one sync-wanting append in a group makes the whole group one sync write
    await Promise.all([j.append([created(1)], { sync: false }), j.append([created(2)]), j.append([created(3)], { sync: false })]);
    assert.ok(j.syncs <= 3, `${j.syncs}`);
    await j.close();
    const k = await Journal.open(dir);
    assert.equal((await k.read()).map((x) => x.seq), [1, 2, 3, 4, 5]);
    await k.close();
  } finally { cleanup(); }
});

test('a large append spans several chunks and still reads and verifies', async () => {
  const { dir, cleanup } = tmpdir('chunks');
  try {
    const j = await Journal.open(dir, { maxChunkRecords: 7 });
    await j.append(Array.from({ length: 50 }, (_, i) => created(i)));
    await j.append([created(50)]);
    assert.equal((await j.read({ fromSeq: 20, toSeq: 23 })).map((r) => r.seq), [20, 21, 22, 23]);
    assert.ok((await j.verify()).result.ok);
    await j.close();
    const db = await raw(dir);
    const keys = await db.keys({ gte: 'r', lt: 's' }).all();
    await db.close();
    assert.equal(keys, [1, 8, 15, 22, 29, 36, 43, 50, 51].map(chunkKey));
  } finally { cleanup(); }
});

test('bad input: coded error, nothing written (unknown type, missing field, wrong type, oversized, NaN, negative)', async () => {
  const { dir, cleanup } = tmpdir('bad');
  try {
    const j = await Journal.open(dir);
    await j.append([created(0)]);
    const before = j.head();
    const bad: unknown[] = [
      { type: 'DeviceTeleported', txId: 1, body: {} },
      { type: 'DeviceCreated', txId: 1, body: { hash: 'x', deviceId: 1 } },
      { type: 'DeviceCreated', txId: 1, body: { hash: 'x', deviceId: '1', size: 1 } },
      { type: 'DeviceCreated', txId: 1, body: { hash: 'x', deviceId: 1, size: NaN } },
      { type: 'DeviceCreated', txId: 1, body: { hash: 'x', deviceId: 1, size: -4096 } },
      { type: 'DeviceCreated', txId: -1, body: { hash: 'x', deviceId: 1, size: 1 } },
      { type: 'DeviceMounted', txId: 1, body: { hash: 'x', path: 'p'.repeat(5000) } },
      { type: 'PoolInitialised', txId: 1, body: { poolName: 'p', dataDevice: 'd', metadataDevice: 'm', loopback: false, dataSize: 1, metadataSize: 1, blockSize: 1, options: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(400)])) } },
      null,
    ];
    for (const e of bad) {
      // A bad event poisons only its own call, even when batched with good ones in the same call.
      await expectCode(j.append([created(9), e as JournalEvent]), 'ERR_BAD_EVENT');
    }
    await assert.throws(() => { throw new Error('x'); });
    let typeErr: unknown;
    try { await j.append('nope' as never); } catch (err) { typeErr = err; }
    assert.instance(typeErr, TypeError);
    assert.equal(j.head(), before);
    assert.equal((await j.read()).length, 1);
    // and the journal still works
    const [r] = await j.append([created(1)]);
    assert.is(r!.seq, 2);
    await j.close();
  } finally { cleanup(); }
});

test('exclusive: a second open in this process, and one in another process, get ERR_JOURNAL_LOCKED', async () => {
  const { dir, cleanup } = tmpdir('lock');
  try {
    const j = await Journal.open(dir);
    await j.append([created(0)]);
    await expectCode(Journal.open(dir), 'ERR_JOURNAL_LOCKED');
    const script = `import('${new URL('../src/index.js', import.meta.url).href}').then(async ({ Journal }) => {
      try { await Journal.open(${JSON.stringify(dir)}); console.log('opened'); } catch (e) { console.log(e.code); }
    })`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.is(child.stdout.trim(), 'ERR_JOURNAL_LOCKED', child.stderr);
    assert.equal((await j.read()).length, 1, 'the holder is unaffected');
    await j.close();
    const k = await Journal.open(dir);
    await k.close();
  } finally { cleanup(); }
});

test('fail-stop: a failed sync write rejects, turns the journal read-only, and acknowledges nothing', async () => {
  const { dir, cleanup } = tmpdir('failstop');
  try {
    const store = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    const realBatch = store.batch.bind(store) as (...a: unknown[]) => Promise<void>;
    let fail = false;
    (store as unknown as { batch: unknown }).batch = (...args: unknown[]) => {
      if (fail) return Promise.reject(Object.assign(new Error('fdatasync: EIO'), { code: 'EIO' }));
      return realBatch(...args);
    };
    const j = await Journal.open(dir, { store });
    await j.append([created(0)]);
    fail = true;
    const inflight = Promise.allSettled([j.append([created(1)]), j.append([created(2)]), j.append([created(3)])]);
    const settled = await inflight;
    for (const s of settled) {
      assert.is(s.status, 'rejected');
      assert.is((s as PromiseRejectedResult).reason.code, 'ERR_JOURNAL_READONLY');
    }
    const err = await expectCode(j.append([created(4)]), 'ERR_JOURNAL_READONLY');
    assert.is((err as { cause?: { code?: string } }).cause?.code, 'EIO', 'the original error is the cause');
    fail = false; // even if the disk "recovers", this handle stays read-only
    await expectCode(j.append([created(5)]), 'ERR_JOURNAL_READONLY');
    assert.is(j.head().seq, 1);
    await j.close();
    const k = await Journal.open(dir);
    assert.equal((await k.read()).map((r) => r.seq), [1]);
    await k.close();
  } finally { cleanup(); }
});

test('tail: replays from fromSeq then follows live appends, no gap, no duplicate; completes on close', async () => {
  const { dir, cleanup } = tmpdir('tail');
  try {
    const j = await Journal.open(dir);
    await j.append([created(0), created(1), created(2)]);
    const got: number[] = [];
    let completed = false;
    const sub = j.tail(2).subscribe({ next: (r) => got.push(r.seq), complete: () => { completed = true; } });
    // appends racing with the replay
    const racing = Array.from({ length: 200 }, (_, i) => j.append([created(3 + i)]));
    await Promise.all(racing);
    await j.append([created(999)]);
    const first5 = await firstValueFrom(j.tail(1).pipe(take(5), toArray()));
    assert.equal(first5.map((r) => r.seq), [1, 2, 3, 4, 5]);
    await new Promise((r) => setTimeout(r, 20));
    await j.close();
    assert.ok(completed, 'completes on close');
    assert.equal(got, Array.from({ length: 203 }, (_, i) => i + 2));
    sub.unsubscribe();
  } finally { cleanup(); }
});

test('checkpoints: stored, found (latest valid), invalid ones skipped with a reason', async () => {
  const { dir, cleanup } = tmpdir('ckpt');
  try {
    const j = await Journal.open(dir);
    await j.append(Array.from({ length: 10 }, (_, i) => created(i)));
    assert.is(await j.latestCheckpoint(), null);
    await j.putCheckpoint(4, { devices: 4 }, 'aaaa');
    await j.putCheckpoint(8, { devices: 8, big: 2 ** 40 }, 'bbbb');
    await expectCode(j.putCheckpoint(11, {}, 'x'), 'ERR_CHECKPOINT_INVALID');
    const c = await j.latestCheckpoint<{ devices: number; big: number }>();
    assert.equal({ seq: c!.seq, stateHash: c!.stateHash, state: c!.state }, { seq: 8, stateHash: 'bbbb', state: { devices: 8, big: 2 ** 40 } });
    await j.close();
    // damage checkpoint 8's state: the latest valid is 4
    const db = await raw(dir);
    const v = Buffer.from((await db.get('c' + (8).toString(16).padStart(16, '0')))!);
    v[v.length - 40]! ^= 0xff;
    await db.put('c' + (8).toString(16).padStart(16, '0'), v);
    await db.close();
    const k = await Journal.open(dir);
    const d = await k.latestCheckpoint();
    assert.is(d!.seq, 4);
    assert.is(d!.skipped.length, 1);
    assert.is(d!.skipped[0]!.seq, 8);
    const rep = await k.verify();
    assert.equal(rep.checkpoints.valid, [4]);
    assert.equal(rep.checkpoints.invalid.map((x) => x.seq), [8]);
    await k.close();
  } finally { cleanup(); }
});

test('unknown newer journal format is refused at open', async () => {
  const { dir, cleanup } = tmpdir('version');
  try {
    const j = await Journal.open(dir);
    await j.append([created(0)]);
    await j.close();
    const db = await raw(dir);
    await db.put(META_KEY, packr.pack({ format: 2, journalId: 'x', createdAt: 1 }));
    await db.close();
    const err = await expectCode(Journal.open(dir), 'ERR_UNKNOWN_VERSION');
    assert.match(err.message, /format 2/);
    // and the refused open released the lock
    await expectCode(Journal.open(dir), 'ERR_UNKNOWN_VERSION');
  } finally { cleanup(); }
});

test.run();
