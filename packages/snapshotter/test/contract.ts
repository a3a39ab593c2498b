/**
 * The snapshotter's contract over real gRPC on a unix socket, for any backend: contract.test.ts runs it on
 * the ModelBackend, test/src/kernel/snapshotter.kernel.test.ts on the real kernel (where it also mounts what
 * Mounts returns, writes, commits and reads the files back in a child and a view).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as assert from 'uvu/assert';
import type { Test } from 'uvu';
import * as grpc from '@grpc/grpc-js';
import type { Backend } from '@thinjournal/dm';
import { startDaemon, loadSnapshotsService, type Daemon, type DaemonOptions } from '../src/index.js';

export interface ContractHarness {
  readonly kind: 'model' | 'kernel';
  readonly backend: Backend;
  /** dm.* options for a small pool. */
  readonly options: readonly string[];
  /** Holds a block device open as another process would; resolves to the release function. */
  hold(devicePath: string): Promise<() => Promise<void>>;
  /** Told of every home a case starts a daemon on (the kernel harness removes what each left in the kernel). */
  track?(home: string): void;
  /** Kernel only: mounts `mounts` at a fresh directory, runs `fn` on it, unmounts. */
  withMounted?<T>(mounts: readonly MountOut[], fn: (dir: string) => Promise<T> | T): Promise<T>;
}

export interface MountOut { type: string; source: string; target: string; options: string[] }
export interface InfoOut { name: string; parent: string; kind: string; created_at: { seconds: number; nanos: number }; updated_at: { seconds: number; nanos: number }; labels: Record<string, string> }

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export class Conn {
  readonly client: Client;
  constructor(socket: string) {
    const C = loadSnapshotsService();
    this.client = new C(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as Client;
  }
  call<T = Record<string, unknown>>(method: string, req: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.client[method] as (r: unknown, cb: (e: grpc.ServiceError | null, v: T) => void) => void).call(this.client, { snapshotter: 'thinjournal', ...req }, (e, v) => (e ? reject(e) : resolve(v)));
    });
  }
  list(filters: string[] = []): Promise<InfoOut[]> {
    return new Promise((resolve, reject) => {
      const out: InfoOut[] = [];
      const s = (this.client.List as (r: unknown) => NodeJS.ReadableStream).call(this.client, { snapshotter: 'thinjournal', filters });
      s.on('data', (m: { info: InfoOut[] }) => out.push(...m.info));
      s.on('error', reject);
      s.on('end', () => resolve(out));
    });
  }
  close(): void {
    this.client.close();
  }
}

/** The call must fail with gRPC status `code` (and `fragment` in its message). */
export async function fails(p: Promise<unknown>, code: grpc.status, fragment?: string): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    assert.is(err.code, code, `status ${err.code} (${err.details}), expected ${code}`);
    if (fragment) assert.ok(err.details.includes(fragment), `"${fragment}" in: ${err.details}`);
    return err;
  }
  assert.unreachable(`succeeded; expected status ${code}`);
  throw new Error('unreachable');
}

export function tmpDir(prefix = 'tjs-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface Running {
  daemon: Daemon;
  conn: Conn;
  home: string;
  socket: string;
  /** Records in the journal now. */
  seq(): number;
  stop(): Promise<void>;
}

export async function start(h: ContractHarness, dir = tmpDir(), extra: Partial<DaemonOptions> = {}): Promise<Running> {
  const home = path.join(dir, 'home');
  const socket = path.join(dir, 'run', 'snapshotter.sock');
  h.track?.(home);
  const daemon = await startDaemon({ home, socket, options: h.options, backend: h.backend, log: () => {}, deviceSet: { workers: false }, ...extra });
  const conn = new Conn(socket);
  return {
    daemon, conn, home, socket,
    seq: () => daemon.deviceSet.journalHandle.head().seq,
    async stop() {
      conn.close();
      await daemon.stop();
    },
  };
}

const KEY = 'default/5/extract-252941172-AC4p sha256:71d6';
const S = grpc.status;

function us(t: { seconds: number; nanos: number }): number {
  return t.seconds * 1e6 + t.nanos / 1000;
}

export type CrashPoint = 'after-intent' | 'after-step-1' | 'after-commit-point' | 'after-outcome';

/** `crashPoints`: the protocol points the crash cases stop at (default all four; the guest's emulation is slow). */
export function defineContract(test: Test, harness: () => Promise<ContractHarness>, { crashPoints = ['after-intent', 'after-step-1', 'after-commit-point', 'after-outcome'] }: { crashPoints?: readonly CrashPoint[] } = {}): void {
  const kernel = (h: ContractHarness) => h.kind === 'kernel';

  test('prepare, mounts, commit, view of the committed parent, stat, remove — keys with spaces and slashes', async () => {
    const h = await harness();
    const r = await start(h);
    try {
      const p = await r.conn.call<{ mounts: MountOut[] }>('Prepare', { key: KEY, parent: '', labels: { 'containerd.io/snapshot/a': 'b' } });
      assert.is(p.mounts.length, 1);
      const m = p.mounts[0]!;
      assert.is(m.type, 'ext4');
      assert.match(m.source, /^\/dev\/mapper\/.+-snap-\d+$/);
      assert.not.ok(m.source.includes(' '), 'device names never come from keys');
      assert.equal(m.options, []);
      const again = await r.conn.call<{ mounts: MountOut[] }>('Mounts', { key: KEY });
      assert.equal(again.mounts, p.mounts);
      let st = (await r.conn.call<{ info: InfoOut }>('Stat', { key: KEY })).info;
      assert.is(st.kind, 'ACTIVE');
      assert.is(st.name, KEY);
      assert.is(st.parent, '');
      assert.equal(st.labels, { 'containerd.io/snapshot/a': 'b' });
      assert.equal(st.created_at, st.updated_at);
      if (h.withMounted) await h.withMounted(p.mounts, (dir) => { writeFileSync(path.join(dir, 'hello.txt'), 'hello from the layer\n'); mkdirSync(path.join(dir, 'etc')); });
      await r.conn.call('Commit', { name: 'sha256:layer one', key: KEY, labels: { 'containerd.io/gc.root': 'x' } });
      await fails(r.conn.call('Stat', { key: KEY }), S.NOT_FOUND);
      st = (await r.conn.call<{ info: InfoOut }>('Stat', { key: 'sha256:layer one' })).info;
      assert.is(st.kind, 'COMMITTED');
      assert.equal(st.labels, { 'containerd.io/gc.root': 'x' });
      await fails(r.conn.call('Mounts', { key: 'sha256:layer one' }), S.FAILED_PRECONDITION);
      const v = await r.conn.call<{ mounts: MountOut[] }>('View', { key: 'view 1', parent: 'sha256:layer one' });
      assert.equal(v.mounts[0]!.options, ['ro']);
      const c = await r.conn.call<{ mounts: MountOut[] }>('Prepare', { key: 'child/1', parent: 'sha256:layer one' });
      assert.is.not(c.mounts[0]!.source, v.mounts[0]!.source);
      st = (await r.conn.call<{ info: InfoOut }>('Stat', { key: 'child/1' })).info;
      assert.is(st.parent, 'sha256:layer one');
      if (h.withMounted) {
        assert.is(await h.withMounted(v.mounts, (dir) => (existsSync(path.join(dir, 'hello.txt')) ? 'seen' : 'missing')), 'seen', 'the view shows the committed file');
        await h.withMounted(v.mounts, (dir) => assert.throws(() => writeFileSync(path.join(dir, 'x'), 'y'), 'a view is read-only'));
        await h.withMounted(c.mounts, (dir) => { writeFileSync(path.join(dir, 'hello.txt'), 'changed in the child\n'); });
        assert.is(await h.withMounted(v.mounts, async (dir) => (await import('node:fs')).readFileSync(path.join(dir, 'hello.txt'), 'utf8')), 'hello from the layer\n', 'the child\'s change stays in the child');
        assert.equal(await h.withMounted(c.mounts, async (dir) => (await import('node:fs')).readdirSync(dir).sort()), ['etc', 'hello.txt'], 'no lost+found in a layer');
      }
      await fails(r.conn.call('Remove', { key: 'sha256:layer one' }), S.FAILED_PRECONDITION, 'remove');
      await r.conn.call('Remove', { key: 'view 1' });
      await r.conn.call('Remove', { key: 'child/1' });
      await r.conn.call('Remove', { key: 'sha256:layer one' });
      assert.equal(await r.conn.list(), []);
      const s = r.daemon.deviceSet.modelState;
      assert.equal([...s.devices.keys()], [''], 'only the base image is left');
      assert.is(s.snapshots.size, 0);
    } finally {
      await r.stop();
    }
  });

  test('status codes: missing key, duplicates, commit of a non-active snapshot, parents, field paths; refused calls journal nothing', async () => {
    const h = await harness();
    const r = await start(h);
    try {
      await r.conn.call('Prepare', { key: 'a', parent: '' });
      await r.conn.call('Commit', { name: 'c', key: 'a' });
      await r.conn.call('View', { key: 'v', parent: 'c' });
      await r.conn.call('Prepare', { key: 'act', parent: 'c' });
      const before = r.seq();
      await fails(r.conn.call('Stat', { key: 'nope' }), S.NOT_FOUND);
      await fails(r.conn.call('Mounts', { key: 'nope' }), S.NOT_FOUND);
      await fails(r.conn.call('Remove', { key: 'nope' }), S.NOT_FOUND);
      await fails(r.conn.call('Usage', { key: 'nope' }), S.NOT_FOUND);
      await fails(r.conn.call('Commit', { name: 'n', key: 'nope' }), S.NOT_FOUND);
      await fails(r.conn.call('Update', { info: { name: 'nope', labels: {} } }), S.NOT_FOUND);
      await fails(r.conn.call('Prepare', { key: 'act', parent: '' }), S.ALREADY_EXISTS);
      await fails(r.conn.call('View', { key: 'c', parent: '' }), S.ALREADY_EXISTS, 'already exists');
      await fails(r.conn.call('Commit', { name: 'c', key: 'act' }), S.ALREADY_EXISTS);
      await fails(r.conn.call('Commit', { name: 'n2', key: 'v' }), S.FAILED_PRECONDITION);
      await fails(r.conn.call('Commit', { name: 'n3', key: 'c' }), S.FAILED_PRECONDITION);
      await fails(r.conn.call('Remove', { key: 'c' }), S.FAILED_PRECONDITION, 'remove');
      await fails(r.conn.call('Prepare', { key: 'x', parent: 'act' }), S.INVALID_ARGUMENT, 'not a committed');
      await fails(r.conn.call('View', { key: 'x', parent: 'v' }), S.INVALID_ARGUMENT);
      await fails(r.conn.call('Prepare', { key: 'x', parent: 'missing parent' }), S.INVALID_ARGUMENT, 'does not exist');
      await fails(r.conn.call('Prepare', { key: '', parent: '' }), S.INVALID_ARGUMENT, 'empty');
      await fails(r.conn.call('Prepare', { key: 'k'.repeat(4097), parent: '' }), S.INVALID_ARGUMENT, '4096');
      await fails(r.conn.call('Prepare', { key: 'x', parent: '', labels: { big: 'v'.repeat(5000) } }), S.INVALID_ARGUMENT, 'label');
      await fails(r.conn.call('Prepare', { key: 'x', parent: '', labels: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`l${i}`, ''])) }), S.INVALID_ARGUMENT, '256');
      await fails(r.conn.call('Update', { info: { name: 'c', parent: 'other' }, update_mask: { paths: ['parent'] } }), S.INVALID_ARGUMENT, 'parent');
      await fails(r.conn.call('Update', { info: { name: 'c' }, update_mask: { paths: ['labels.'] } }), S.INVALID_ARGUMENT);
      await fails(r.conn.call('Commit', { name: '', key: 'act' }), S.INVALID_ARGUMENT);
      await fails(r.conn.list(['kind=active']), S.INVALID_ARGUMENT, 'filter');
      await fails(r.conn.list(['labels."unterminated']), S.INVALID_ARGUMENT);
      assert.is(r.seq(), before, 'no refused call journaled anything');
      assert.equal((await r.conn.list()).map((i) => i.name), ['act', 'c', 'v']);
    } finally {
      await r.stop();
    }
  });

  test('update: no paths or "labels" replace the labels, "labels.<key>" sets or removes one; created stays, updated moves', async () => {
    const h = await harness();
    const r = await start(h);
    try {
      await r.conn.call('Prepare', { key: 'a', parent: '', labels: { l0: 'v0' } });
      const st = (await r.conn.call<{ info: InfoOut }>('Stat', { key: 'a' })).info;
      let u = (await r.conn.call<{ info: InfoOut }>('Update', { info: { ...st, parent: 'doesnotexist', labels: { l1: 'v1', l2: 'v2', l3: 'v3' } } })).info;
      assert.equal(u.labels, { l1: 'v1', l2: 'v2', l3: 'v3' });
      assert.is(u.parent, '');
      assert.is(u.kind, 'ACTIVE');
      assert.equal(u.created_at, st.created_at);
      assert.ok(us(u.updated_at) > us(st.updated_at));
      u = (await r.conn.call<{ info: InfoOut }>('Update', { info: { name: 'a', labels: { l1: 'updated', l4: 'v4' } }, update_mask: { paths: ['labels.l1', 'labels.l2'] } })).info;
      assert.equal(u.labels, { l1: 'updated', l3: 'v3' });
      u = (await r.conn.call<{ info: InfoOut }>('Update', { info: { name: 'a', labels: { l4: 'v4' } }, update_mask: { paths: ['labels'] } })).info;
      assert.equal(u.labels, { l4: 'v4' });
      assert.equal((await r.conn.call<{ info: InfoOut }>('Stat', { key: 'a' })).info.labels, { l4: 'v4' });
    } finally {
      await r.stop();
    }
  });

  test('times have sub-millisecond precision and increase', async () => {
    const h = await harness();
    const r = await start(h);
    try {
      const t0 = Date.now() * 1000;
      await r.conn.call('Prepare', { key: 'a', parent: '' });
      await r.conn.call('Prepare', { key: 'b', parent: '' });
      const [a, b] = await r.conn.list();
      assert.ok(us(a!.created_at) >= t0 - 1000 && us(a!.created_at) <= Date.now() * 1000 + 1000, 'now');
      assert.ok(us(b!.created_at) > us(a!.created_at));
      assert.is(a!.created_at.nanos % 1000, 0, 'microseconds');
    } finally {
      await r.stop();
    }
  });

  test('list: containerd filters (kind, name, parent, labels, presence; "," is AND, several are OR)', async () => {
    const h = await harness();
    const r = await start(h);
    try {
      const gc = { 'containerd.io/gc.root': 'check-walk' };
      await r.conn.call('Prepare', { key: 'p-tmp', parent: '' });
      await r.conn.call('Commit', { name: 'p', key: 'p-tmp', labels: gc });
      await r.conn.call('Prepare', { key: 'a-wl', parent: 'p', labels: { ...gc, l: '1' } });
      await r.conn.call('Prepare', { key: 'a-np-wl', parent: '', labels: { l: '2' } });
      await r.conn.call('View', { key: 'v-wl', parent: 'p', labels: gc });
      const names = async (...f: string[]) => (await r.conn.list(f)).map((i) => i.name);
      assert.equal(await names(), ['a-np-wl', 'a-wl', 'p', 'v-wl']);
      assert.equal(await names('labels."containerd.io/gc.root"==check-walk'), ['a-wl', 'p', 'v-wl']);
      assert.equal(await names('kind==active,labels."containerd.io/gc.root"==check-walk'), ['a-wl']);
      assert.equal(await names('kind==view,labels."containerd.io/gc.root"==check-walk'), ['v-wl']);
      assert.equal(await names('kind==committed,labels."containerd.io/gc.root"==check-walk'), ['p']);
      assert.equal(await names('name==p', 'name==a-np-wl'), ['a-np-wl', 'p']);
      assert.equal(await names('name==a-wl,labels.l'), ['a-wl']);
      assert.equal(await names('parent==p'), ['a-wl', 'v-wl']);
      assert.equal(await names('parent!="",labels."containerd.io/gc.root"==check-walk'), ['a-wl', 'v-wl']);
      assert.equal(await names('labels.l'), ['a-np-wl', 'a-wl']);
      assert.equal(await names('labels.l==2'), ['a-np-wl']);
      assert.equal(await names('name~=^a-'), ['a-np-wl', 'a-wl']);
      assert.equal(await names(' kind == view '), ['v-wl']);
      // more than one message's worth
      for (let i = 0; i < 105 && h.kind === 'model'; i++) await r.conn.call('Prepare', { key: `bulk ${String(i).padStart(3, '0')}`, parent: 'p' });
      if (h.kind === 'model') assert.is((await r.conn.list(['name~=^bulk'])).length, 105);
    } finally {
      await r.stop();
    }
  });

  test('usage counts mapped bytes; remove of a busy device succeeds and Cleanup deletes it once released', async () => {
    const h = await harness();
    const r = await start(h);
    try {
      const p = await r.conn.call<{ mounts: MountOut[] }>('Prepare', { key: 'a', parent: '' });
      const u0 = await r.conn.call<{ size: number; inodes: number }>('Usage', { key: 'a' });
      assert.is(u0.inodes, 0);
      assert.ok(Number.isSafeInteger(u0.size) && u0.size >= 0);
      if (h.withMounted) {
        await h.withMounted(p.mounts, (dir) => writeFileSync(path.join(dir, 'big'), Buffer.alloc(4 << 20, 7)));
        const u1 = await r.conn.call<{ size: number }>('Usage', { key: 'a' });
        assert.ok(u1.size >= u0.size + (4 << 20), `usage grew by the file: ${u0.size} → ${u1.size}`);
      }
      const release = await h.hold(p.mounts[0]!.source);
      const hash = r.daemon.deviceSet.modelState.snapshots.get('a')!.hash;
      await r.conn.call('Remove', { key: 'a' });
      await fails(r.conn.call('Stat', { key: 'a' }), S.NOT_FOUND);
      assert.ok(r.daemon.deviceSet.modelState.devices.get(hash)?.deletionDeferred, 'the busy device awaits deferred deletion');
      await r.conn.call('Cleanup', {});
      assert.ok(r.daemon.deviceSet.modelState.devices.has(hash), 'still held: still there');
      await release();
      await r.conn.call('Cleanup', {});
      assert.not.ok(r.daemon.deviceSet.modelState.devices.has(hash), 'Cleanup deleted it');
      // the key is free again
      await r.conn.call('Prepare', { key: 'a', parent: '' });
    } finally {
      await r.stop();
    }
  });

  test('one daemon per home; the socket is 0600; a stale socket is replaced, anything else refused', async () => {
    const h = await harness();
    const dir = tmpDir();
    const r = await start(h, dir);
    try {
      const st = lstatSync(r.socket);
      assert.ok(st.isSocket());
      assert.is(st.mode & 0o777, 0o600);
      try {
        await startDaemon({ home: r.home, socket: path.join(dir, 'other.sock'), options: h.options, backend: h.backend, log: () => {}, deviceSet: { workers: false } });
        assert.unreachable('a second daemon started');
      } catch (e) {
        assert.is((e as { code?: string }).code, 'ERR_JOURNAL_LOCKED');
      }
      assert.not.ok(existsSync(path.join(dir, 'other.sock')));
      await r.conn.call('Prepare', { key: 'still serving', parent: '' });
    } finally {
      await r.stop();
    }
    // the socket file is gone after a clean stop; a leftover one (from a killed daemon) is replaced
    assert.not.ok(existsSync(r.socket));
    // a process that listened there and exited without removing its socket
    spawnSync(process.execPath, ['-e', 'require("net").createServer().listen(process.argv[1], () => process.exit(0))', r.socket]);
    assert.ok(lstatSync(r.socket).isSocket(), 'a socket file with nobody listening');
    const r2 = await start(h, dir);
    await r2.conn.call('Stat', { key: 'still serving' });
    await r2.stop();
    writeFileSync(r.socket, 'not a socket');
    try {
      await start(h, dir);
      assert.unreachable('served over a regular file');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_BAD_PATH');
    }
  });

  test('stop drains calls in flight: a Prepare under way completes before the journal closes', async () => {
    const h = await harness();
    let reached!: () => void;
    const inside = new Promise<void>((res) => (reached = res));
    const r = await start(h, tmpDir(), { deviceSet: { workers: false, onPoint: async (p, c) => { if (p === 'after-intent' && c.type === 'snapshotPrepare') { reached(); await new Promise((res) => setTimeout(res, 200)); } } } });
    const pending = r.conn.call('Prepare', { key: 'in flight', parent: '' });
    await inside;
    const stopped = r.daemon.stop();
    const res = await pending.then(() => 'ok', (e: grpc.ServiceError) => `failed ${e.code} ${e.details}`);
    await stopped;
    r.conn.close();
    assert.is(res, 'ok');
    const again = await start(h, path.dirname(r.home));
    try {
      assert.is((await again.conn.call<{ info: InfoOut }>('Stat', { key: 'in flight' })).info.kind, 'ACTIVE');
    } finally {
      await again.stop();
    }
  });

  for (const point of crashPoints) {
    test(`a crash at ${point} of a Prepare and of a Remove: the restart recovers, nothing acknowledged is lost`, async () => {
      const h = await harness();
      const dir = tmpDir();
      let armed: string | null = null;
      let crashed!: () => void;
      const crash = new Promise<void>((res) => (crashed = res));
      const r = await start(h, dir, { deviceSet: { workers: false, onPoint: (p, c) => { if (armed !== null && p === point && c.type === 'snapshotPrepare') { crashed(); return new Promise(() => {}); } } } });
      await r.conn.call('Prepare', { key: 'kept', parent: '' });
      await r.conn.call('Commit', { name: 'kept layer', key: 'kept' });
      await r.conn.call('Prepare', { key: 'doomed', parent: 'kept layer' });
      armed = 'snapshotPrepare';
      void r.conn.call('Prepare', { key: 'in flight', parent: 'kept layer' }).catch(() => {});
      await crash;
      // The process dies: its journal handle and socket go with it; the kernel stays as it was.
      r.conn.close();
      r.daemon.handle.server.forceShutdown();
      await r.daemon.deviceSet.journalHandle.close();
      let r2 = await start(h, dir);
      try {
        const names = (await r2.conn.list()).map((i) => i.name);
        assert.ok(names.includes('kept layer') && names.includes('doomed'), `acknowledged snapshots survive: ${names}`);
        const inFlight = names.includes('in flight');
        assert.is(inFlight, point === 'after-commit-point' || point === 'after-outcome', `the in-flight Prepare ${inFlight ? 'rolled forward' : 'rolled back'}`);
        if (inFlight) await r2.conn.call('Mounts', { key: 'in flight' });
        consistent(r2);
        await r2.stop();
        // now a Remove dies at the same point
        const r3 = await start(h, dir, { deviceSet: { workers: false, onPoint: (p, c) => { if (p === point && c.type === 'snapshotRemove') { crashed2(); return new Promise(() => {}); } } } });
        let crashed2!: () => void;
        const crash2 = new Promise<void>((res) => (crashed2 = res));
        void r3.conn.call('Remove', { key: 'doomed' }).catch(() => {});
        await crash2;
        r3.conn.close();
        r3.daemon.handle.server.forceShutdown();
        await r3.daemon.deviceSet.journalHandle.close();
        r2 = await start(h, dir);
        const after = (await r2.conn.list()).map((i) => i.name);
        assert.ok(after.includes('kept layer'));
        // A deletion whose intent is durable is completed by recovery, wherever it stopped.
        assert.not.ok(after.includes('doomed'), 'the in-flight Remove was completed');
        consistent(r2);
        // and the home works on
        await r2.conn.call('Prepare', { key: 'after restart', parent: 'kept layer' });
      } finally {
        await r2.stop();
      }
    });
  }

  /** Every snapshot's device exists; every device but the base image holds a snapshot or awaits deletion. */
  function consistent(r: Running): void {
    const s = r.daemon.deviceSet.modelState;
    assert.is(s.pending, null, 'no transaction left pending');
    const held = new Set([...s.snapshots.values()].map((x) => x.hash));
    for (const x of s.snapshots.values()) assert.ok(s.devices.has(x.hash), `device of ${x.key}`);
    for (const d of s.devices.values()) if (d.hash !== '' && !d.deletionDeferred) assert.ok(held.has(d.hash), `device ${d.hash} leaked`);
  }
}
