// The device commands (init, create, snapshot, rm, mount, umount, status, shutdown) on a ModelBackend
// injected through Io.backend: one backend per test, shared by its calls (the model's "kernel" lives in
// memory, as the real one outlives each CLI process); the journal is real files in a temporary home.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Journal } from '@thinjournal/journal';
import { ModelBackend, probeDeviceMapper } from '@thinjournal/dm';
import { effectiveOptions, parseOptions, type OptionsEnv } from '@thinjournal/model';
import { main, EXIT, type Io } from '../src/index.js';
import { mergeOptions, optionsFromRecorded } from '../src/devices.js';

const BIN = fileURLToPath(new URL('../../bin/thinjournal.js', import.meta.url));
const SMALL = ['--opt', 'dm.loopdatasize=256M', '--opt', 'dm.loopmetadatasize=16M', '--opt', 'dm.basesize=64M', '--opt', 'dm.fs=ext4'];

type Captured = Io & { out: () => string; err: () => string };
function capture(backend?: ModelBackend): Captured {
  let out = '', err = '';
  return { stdout: { write: (s: string) => (out += s), isTTY: false }, stderr: { write: (s: string) => (err += s), isTTY: false }, env: {}, ...(backend ? { backend } : {}), out: () => out, err: () => err };
}

interface Home {
  readonly home: string;
  readonly backend: ModelBackend;
  /** One process-like call: `thinjournal <args> --home <home>` on this test's backend. */
  run(...args: string[]): Promise<{ code: number; out: string; err: string; json: () => any }>;
  /** Exit 0 expected; returns the parsed --json output. */
  ok(...args: string[]): Promise<any>;
  head(): Promise<number>;
  cleanup(): void;
}

function makeHome(): Home {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-dev-'));
  const home = path.join(dir, 'home');
  const backend = new ModelBackend();
  const run = async (...args: string[]) => {
    const io = capture(backend);
    const code = await main([...args, '--home', home], io);
    return { code, out: io.out(), err: io.err(), json: () => JSON.parse(io.out()) };
  };
  return {
    home, backend, run,
    async ok(...args) {
      const r = await run(...args, '--json');
      assert.is(r.code, EXIT.OK, `${args.join(' ')}: ${r.err}`);
      assert.is(r.out.trim().split('\n').length, 1, 'a single JSON value');
      return r.json();
    },
    async head() {
      const j = await Journal.open(path.join(home, 'journal'), { readOnly: true });
      try { return j.head().seq; } finally { await j.close(); }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function initialised(): Promise<Home> {
  const h = makeHome();
  const r = await h.run('init', ...SMALL);
  assert.is(r.code, EXIT.OK, r.err);
  return h;
}

// ---- options re-derived from the journal -----------------------------------------------------------------

test('optionsFromRecorded: what effectiveOptions recorded parses back to the same options', () => {
  const cases: [string[], OptionsEnv][] = [
    [[], {}],
    [['dm.loopdatasize=256M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'], { deferredRemovalSupported: true }],
    [['dm.fs=xfs', 'dm.xfs_nospace_max_retries=3', 'dm.mkfsarg=-m 0', 'dm.mkfsarg=-E nodiscard', 'dm.mountopt=noatime,nodev', 'dm.mountopt=nosuid'], { xfsSupported: true }],
    [['dm.thinpooldev=/dev/mapper/vg-pool', 'dm.min_free_space=5%', 'dm.libdm_log_level=7', 'dm.blkdiscard=false'], {}],
    [['dm.datadev=/dev/sdb1', 'dm.metadatadev=/dev/sdb2', 'dm.blocksize=512K', 'dm.use_deferred_removal=true', 'dm.use_deferred_deletion=false', 'dm.override_udev_sync_check=true'], { deferredRemovalSupported: true }],
    [['dm.basesize=1.5G', 'dm.use_deferred_removal=false'], { deferredRemovalSupported: true }],
  ];
  for (const [given, env] of cases) {
    const recorded = effectiveOptions(parseOptions(given, env));
    const back = optionsFromRecorded(recorded);
    for (const o of back) assert.match(o, /^dm\.[a-z_]+=\S/, `${o} is dm.key=value`);
    const again = parseOptions(back, env); // strict: throws ERR_BAD_OPTION on anything it does not accept
    assert.equal(effectiveOptions(again), recorded, given.join(' '));
    assert.is(again.mountOptions, parseOptions(given, env).mountOptions);
    assert.equal(again.mkfsArgs, parseOptions(given, env).mkfsArgs);
  }
});

test('optionsFromRecorded: a base image grown past the recorded dm.basesize is passed at its size; mergeOptions', () => {
  const recorded = effectiveOptions(parseOptions(['dm.basesize=64M', 'dm.fs=ext4'], {}));
  assert.ok(optionsFromRecorded(recorded, 128 * 2 ** 20).includes(`dm.basesize=${128 * 2 ** 20}`));
  assert.ok(optionsFromRecorded(recorded, 32 * 2 ** 20).includes(`dm.basesize=${64 * 2 ** 20}`));
  const rec = optionsFromRecorded(recorded);
  const merged = mergeOptions(rec, ['dm.basesize=1G', 'dm.mountopt=noatime']);
  assert.equal(merged.filter((o) => o.startsWith('dm.basesize=')), ['dm.basesize=1G']);
  assert.ok(merged.includes('dm.mountopt=noatime'));
  parseOptions(merged, {});
  // Moving the pool: recorded loopback sizes (and the block size) give way, so the driver can say why it refuses.
  const moved = mergeOptions(rec, ['dm.thinpooldev=other']);
  assert.not.ok(moved.some((o) => /^dm\.(loopdatasize|loopmetadatasize|blocksize)=/.test(o)), moved.join(' '));
  parseOptions(moved, {});
});

// ---- init ------------------------------------------------------------------------------------------------

test('init: exit 0 and the status printed; --json parses back; a second init opens (recovery, base check) without --opt', async () => {
  const h = makeHome();
  try {
    const r = await h.run('init', ...SMALL);
    assert.is(r.code, EXIT.OK, r.err);
    assert.match(r.out, /^initialised .*: pool thinjournal-.*-pool, base image ext4 [0-9a-f-]{36}/);
    assert.match(r.out, /Pool Name: +thinjournal-/);
    assert.match(r.out, /Base Device Size: +67\.11MB/);
    assert.match(r.out, /Data Space Total: +268\.4MB/);
    const j = await h.ok('init');
    assert.is(j.created, false);
    assert.match(j.poolName, /^thinjournal-.*-pool$/);
    assert.is(j.baseDeviceFilesystem, 'ext4');
    assert.is(j.status.baseDeviceSize, 64 * 2 ** 20);
    assert.is(j.status.data.total, 256 * 2 ** 20);
    assert.ok(j.options.includes('dm.loopdatasize=268435456'), 'options re-derived from the journal');
    assert.equal(j.driverStatus[0], ['Pool Name', j.poolName]);
    assert.ok(await h.backend.info(j.poolName), 'the pool is up after the process-like call');
  } finally { h.cleanup(); }
});

test('init --json on a fresh home says created; bad option: ERR_BAD_OPTION naming it, exit 2, nothing created', async () => {
  const h = makeHome();
  try {
    for (const opt of ['dm.basesize=lots', 'dm.bogus=1', 'dm.fs=btrfs', 'basesize']) {
      const r = await h.run('init', '--opt', opt);
      assert.is(r.code, EXIT.USAGE, opt);
      assert.match(r.err, /^ERR_BAD_OPTION: /, opt);
      assert.ok(r.err.includes(opt.split('=')[0]!), `${opt}: ${r.err}`);
      assert.is(r.out, '');
      assert.not.ok(existsSync(h.home), 'nothing created, not even the home');
    }
    const j = await h.ok('init', ...SMALL);
    assert.is(j.created, true);
    assert.is(j.transactionId, 1);
    // Later: a bad option is refused before anything is touched.
    const before = await h.head();
    const r = await h.run('init', '--opt', 'dm.min_free_space=200%');
    assert.is(r.code, EXIT.USAGE);
    assert.match(r.err, /^ERR_BAD_OPTION: dm\.min_free_space/);
    assert.is(await h.head(), before);
  } finally { h.cleanup(); }
});

test('init later: --opt dm.basesize grows the base image (DeviceResized) and later calls take the grown size; smaller is refused', async () => {
  const h = await initialised();
  try {
    const j = await h.ok('init', '--opt', 'dm.basesize=128M');
    assert.is(j.status.baseDeviceSize, 128 * 2 ** 20);
    assert.equal(await types(h, 'DeviceResized'), ['DeviceResized']);
    assert.is((await h.ok('status')).baseDeviceSize, 128 * 2 ** 20, 'a later call without --opt is not refused for a smaller recorded dm.basesize');
    assert.is((await h.ok('create', 'big')).size, 128 * 2 ** 20);
    const before = await h.head();
    assert.is((await h.ok('init', '--opt', 'dm.basesize=134217728')).status.baseDeviceSize, 128 * 2 ** 20, 'the size it has now, in bytes: fine');
    const r = await h.run('init', '--opt', 'dm.basesize=64M');
    assert.is(r.code, EXIT.USAGE, r.err);
    assert.is(r.err, 'ERR_BAD_OPTION: dm.basesize=64M: the base image is 134217728 bytes now (the pool was set up with dm.basesize=67108864); it can only grow\n');
    assert.is(await h.head(), before);
  } finally { h.cleanup(); }
});

/** The types of the records of the given types in the home's journal (as `dump --type` prints them). */
async function types(h: Home, list: string): Promise<string[]> {
  const r = await h.run('dump', '--type', list);
  assert.is(r.code, EXIT.OK, r.err);
  return r.out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).type);
}

test('init later: --opt dm.loopdatasize above the pool\'s size grows the pool (PoolResized) and later calls keep it; smaller is refused', async () => {
  const h = await initialised();
  try {
    const j = await h.ok('init', '--opt', 'dm.loopdatasize=512M');
    assert.is(j.status.data.total, 512 * 2 ** 20);
    assert.equal(await types(h, 'PoolResized'), ['PoolResized']);
    const again = await h.ok('init');
    assert.is(again.status.data.total, 512 * 2 ** 20, 'the next process finds the grown pool');
    assert.ok(again.options.includes(`dm.loopdatasize=${512 * 2 ** 20}`), again.options.join(' '));
    const before = await h.head();
    assert.is((await h.ok('init', '--opt', 'dm.loopdatasize=512M')).status.data.total, 512 * 2 ** 20, 'the same size again: nothing to do');
    assert.is(await h.head(), before);
    const r = await h.run('init', '--opt', 'dm.loopdatasize=256M');
    assert.is(r.code, EXIT.USAGE, r.err);
    assert.is(r.err, 'ERR_BAD_OPTION: dm.loopdatasize=256M: the pool\'s data is 536870912 bytes now (the pool was set up with dm.loopdatasize=268435456); it can only grow\n');
    assert.is(await h.head(), before);
  } finally { h.cleanup(); }
});

test('init later: an option without an event of its own is refused when it differs (both values named, nothing changed), accepted when it is the same', async () => {
  const h = await initialised();
  try {
    const before = await h.head();
    // The same values as recorded, in other spellings: fine, and nothing is journaled.
    const same = await h.ok('init', '--opt', 'dm.basesize=64M', '--opt', 'dm.fs=ext4', '--opt', 'dm.min_free_space=10%', '--opt', 'dm.use_deferred_removal=1', '--opt', 'dm.loopmetadatasize=16777216');
    assert.is(same.created, false);
    assert.is(await h.head(), before);
    for (const [opt, message] of [
      ['dm.mountopt=nodev', 'dm.mountopt=nodev: the pool was set up without dm.mountopt; this option cannot change after init (the journal records options once, at set-up)'],
      ['dm.min_free_space=5%', 'dm.min_free_space=5%: the pool was set up with dm.min_free_space=10%; this option cannot change after init (the journal records options once, at set-up)'],
      ['dm.use_deferred_deletion=false', 'dm.use_deferred_deletion=false: the pool was set up with dm.use_deferred_deletion=true; this option cannot change after init (the journal records options once, at set-up)'],
      ['dm.fs=xfs', 'dm.fs=xfs: the pool was set up with dm.fs=ext4; this option cannot change after init (the journal records options once, at set-up)'],
      ['dm.loopmetadatasize=32M', 'dm.loopmetadatasize=32M: the pool was set up with dm.loopmetadatasize=16777216; this option cannot change after init (the journal records options once, at set-up)'],
      ['dm.mkfsarg=-m 0', 'dm.mkfsarg="-m 0": the pool was set up without dm.mkfsarg; this option cannot change after init (the journal records options once, at set-up)'],
      ['dm.thinpooldev=other-pool', 'dm.thinpooldev=other-pool: the pool was set up without dm.thinpooldev; this option cannot change after init (the journal records options once, at set-up)'],
      ['dm.blkdiscard=false', 'dm.blkdiscard=false: the pool was set up with dm.blkdiscard=true; this option cannot change after init (the journal records options once, at set-up)'],
    ] as const) {
      const r = await h.run('init', '--opt', opt);
      assert.is(r.code, EXIT.USAGE, `${opt}: ${r.err}`);
      assert.is(r.err, `ERR_BAD_OPTION: ${message}\n`, opt);
      assert.is(r.out, '');
      assert.is(await h.head(), before, `${opt}: nothing journaled`);
    }
    // A refused option is not in force for the call either: the next mount has no nodev.
    await h.ok('create', 'a');
    assert.not.match((await h.ok('mount', 'a')).options ?? '', /nodev/);
  } finally { h.cleanup(); }
});

test('init on a home that is a file, under a file, or that cannot be created: ERR_BAD_PATH naming the path, exit 1, nothing created', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-path-'));
  try {
    const file = path.join(dir, 'file');
    writeFileSync(file, 'not a directory\n');
    const cases: [string, RegExp][] = [
      [file, /^ERR_BAD_PATH: home ".*\/file" is not a directory \(a file is in the way\)\n$/],
      [path.join(file, 'home'), /^ERR_BAD_PATH: home ".*\/file\/home" cannot be created: ".*\/file" is not a directory\n$/],
    ];
    if (process.getuid?.() === 0) {
      // mkdir there fails with ENOENT although /proc exists (Node's recursive mkdir loops forever on that).
      cases.push(['/proc/thinjournal-test-home', /^ERR_BAD_PATH: home "\/proc\/thinjournal-test-home" cannot be created: mkdir "\/proc\/thinjournal-test-home": ENOENT \(no such file or directory\)\n$/]);
      // root passes permission checks; sysfs still refuses directories (EPERM, or EROFS where it is mounted read-only).
      cases.push(['/sys/thinjournal-test-home', /^ERR_BAD_PATH: home "\/sys\/thinjournal-test-home" cannot be created: mkdir "\/sys\/thinjournal-test-home": E(PERM|ROFS|ACCES) \([a-z -]+\)\n$/]);
    } else {
      const locked = path.join(dir, 'locked');
      mkdirSync(locked, { mode: 0o500 });
      cases.push([path.join(locked, 'home'), /^ERR_BAD_PATH: home ".*\/locked\/home" cannot be created in ".*\/locked": EACCES \(permission denied\)\n$/]);
      const ro = path.join(dir, 'ro-home');
      mkdirSync(ro, { mode: 0o700 });
      chmodSync(ro, 0o500);
      cases.push([ro, /^ERR_BAD_PATH: home ".*\/ro-home" is not writable: EACCES \(permission denied\)\n$/]);
    }
    for (const [home, want] of cases) {
      const io = capture(new ModelBackend());
      const code = await main(['init', '--home', home, ...SMALL], io);
      assert.is(code, EXIT.ERROR, `${home}: ${io.err()}`);
      assert.match(io.err(), want, home);
      assert.is(io.out(), '');
      assert.not.ok(existsSync(path.join(home, 'journal')), `${home}: no journal`);
    }
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('device commands on a home without a pool: ERR_POOL_NOT_INITIALISED, exit 1, nothing created', async () => {
  const h = makeHome();
  try {
    for (const args of [['create', 'a'], ['status'], ['mount', 'a'], ['shutdown']]) {
      const r = await h.run(...args);
      assert.is(r.code, EXIT.ERROR, args.join(' '));
      assert.match(r.err, /^ERR_POOL_NOT_INITIALISED: .*thinjournal init/);
      assert.not.ok(existsSync(h.home), 'home not created');
    }
  } finally { h.cleanup(); }
});

// ---- create, snapshot, rm ---------------------------------------------------------------------------------

test('exit 2 for malformed input: CODE: message naming the text, nothing journaled (the head seq is unchanged)', async () => {
  const h = await initialised();
  try {
    await h.ok('create', 'a');
    const before = await h.head();
    const prefix = (await h.ok('status')).poolName.replace(/-pool$/, '');
    for (const [args, want] of [
      [['create', 'a/b'], /^ERR_BAD_ID: id "a\/b" contains a path separator\n$/],
      [['create', 'x', '--size', '12q'], /^ERR_BAD_SIZE: storage option size="12q" is not a positive size/],
      [['snapshot', 'x', '--from', 'a', '--size', '12q'], /^ERR_BAD_SIZE: .*"12q"/],
      [['init', '--opt', 'dm.basesize=lots'], /^ERR_BAD_OPTION: dm\.basesize="lots"/],
      // dm names are <prefix>-<id>, at most 127 bytes: refused at create, not at the first mount.
      [['create', 'x'.repeat(200)], new RegExp(`^ERR_BAD_ID: id "x+…" is 200 bytes; with the device prefix "${prefix}" the device name would be ${prefix.length + 201} bytes, over the kernel's 127`)],
      [['snapshot', 'y'.repeat(200), '--from', 'a'], /^ERR_BAD_ID: id "y+…" is 200 bytes; .*over the kernel's 127/],
    ] as [string[], RegExp][]) {
      const r = await h.run(...args);
      assert.is(r.code, EXIT.USAGE, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, want, args.join(' '));
      assert.is(r.out, '');
      assert.is(await h.head(), before, `${args.join(' ')}: nothing journaled`);
    }
    // The longest id that fits is created and mounts.
    const longest = 'z'.repeat(127 - prefix.length - 1);
    await h.ok('create', longest);
    assert.match((await h.ok('mount', longest)).device, new RegExp(`${prefix}-${longest}$`));
  } finally { h.cleanup(); }
});

test('create / snapshot: success and --json; lineage shows the tree, snapshot-made ids included', async () => {
  const h = await initialised();
  try {
    const a = await h.ok('create', 'a');
    assert.equal({ id: a.id, parent: a.parent, size: a.size }, { id: 'a', parent: '', size: 64 * 2 ** 20 });
    assert.ok(Number.isInteger(a.deviceId) && a.deviceId > 1);
    const b = await h.ok('create', 'b', '--parent', 'a', '--size', '128M');
    assert.equal({ parent: b.parent, size: b.size }, { parent: 'a', size: 128 * 2 ** 20 });
    const s = await h.run('snapshot', 'a-snap', '--from', 'a');
    assert.is(s.code, EXIT.OK, s.err);
    assert.match(s.out, /^created a-snap: thin id \d+, 67108864 bytes, a snapshot of "a"\n$/);
    const bs = await h.ok('snapshot', 'base-snap', '--from', '');
    assert.is(bs.parent, '');
    const t = await h.run('lineage');
    assert.is(t.code, EXIT.OK);
    assert.is(t.out, `(base) #1\n├── a #${a.deviceId}\n│   ├── b #${b.deviceId}\n│   └── a-snap #${a.deviceId + 2}\n└── base-snap #${a.deviceId + 3}\n`);
    const lj = await h.ok('lineage');
    assert.equal(lj[0].children.map((c: { hash: string }) => c.hash), ['a', 'base-snap']);
    assert.equal(lj[0].children[0].children.map((c: { hash: string }) => c.hash), ['b', 'a-snap']);
  } finally { h.cleanup(); }
});

test('create errors: unknown parent, duplicate, bad size, bad id (nothing journaled), missing arguments (exit 2)', async () => {
  const h = await initialised();
  try {
    await h.ok('create', 'a');
    let r = await h.run('create', 'x', '--parent', 'nope');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_NOT_FOUND: .*"nope"/);
    r = await h.run('snapshot', 'x', '--from', 'nope');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_NOT_FOUND: /);
    r = await h.run('create', 'a');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_EXISTS: /);
    r = await h.run('create', 'y', '--size', 'huge');
    assert.is(r.code, EXIT.USAGE);
    assert.match(r.err, /^ERR_BAD_SIZE: .*huge/);
    const before = await h.head();
    for (const args of [['create', '../escape'], ['create', 'a/b'], ['create', 'ok', '--parent', '..'], ['snapshot', '.', '--from', 'a'], ['rm', 'x/y'], ['mount', '../../etc'], ['umount', '..'], ['status', 'a/..']]) {
      r = await h.run(...args);
      assert.is(r.code, EXIT.USAGE, args.join(' '));
      assert.match(r.err, /^ERR_BAD_ID: /, args.join(' '));
      assert.is(r.out, '');
    }
    assert.is(await h.head(), before, 'nothing journaled for bad ids');
    for (const [args, text] of [
      [['create'], 'missing ID'], [['create', 'a', 'b'], '"b"'], [['create', 'z', '--parent'], '--parent'],
      [['snapshot', 'z'], '--from'], [['rm'], 'missing ID'], [['mount'], 'missing ID'], [['umount'], 'missing ID'],
      [['status', 'a', 'b'], '"b"'], [['init', '--opt'], '--opt'], [['create', 'z', '--opt', 'dm.fs=ext4'], '--opt'], [['shutdown', 'now'], 'now'],
      [['mount', 'a', '--label', ''], '--label is empty'], [['create', 'z', '--size', ''], '--size is empty'], [['snapshot', 'z', '--from', 'a', '--size', ' '], '--size " " is blank'],
      [['init', '--opt', ''], '--opt is empty'], [['create', 'z', '--parent', 'a', '--parent', 'b'], '--parent given twice ("a", then "b")'],
    ] as [string[], string][]) {
      r = await h.run(...args);
      assert.is(r.code, EXIT.USAGE, args.join(' '));
      assert.ok(r.err.startsWith('usage: ') && r.err.includes(text), `${args.join(' ')} → ${r.err}`);
    }
    assert.is(await h.head(), before, 'nothing journaled for usage errors');
  } finally { h.cleanup(); }
});

test('rm: success and --json; unknown id; a device with snapshots or mounted is busy; busy and open: --sync refuses, without it deletion is deferred and finished by a later call', async () => {
  const h = await initialised();
  try {
    await h.ok('create', 'a');
    await h.ok('create', 'b', '--parent', 'a');
    let r = await h.run('rm', 'a');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_BUSY: .*snapshot/);
    assert.equal(await h.ok('rm', 'b'), { id: 'b', deleted: true, deferred: false });
    r = await h.run('rm', 'b');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_NOT_FOUND: /);
    r = await h.run('rm', 'a');
    assert.is(r.code, EXIT.OK, r.err);
    assert.is(r.out, 'removed a\n');

    // Someone else holds "c" open (mounted by us, then unmounted while held: removal deferred).
    await h.ok('create', 'c');
    const m = await h.ok('mount', 'c');
    r = await h.run('rm', 'c');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_BUSY: .*mounted/);
    const release = h.backend.hold(m.device);
    const u = await h.ok('umount', 'c');
    assert.equal({ active: u.active, removalDeferred: u.removalDeferred }, { active: true, removalDeferred: true });
    r = await h.run('rm', 'c', '--sync');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_BUSY: /);
    assert.equal(await h.ok('rm', 'c'), { id: 'c', deleted: false, deferred: true });
    assert.is((await h.ok('status')).deferredDeletedDeviceCount, 1);
    const ls = await h.ok('ls');
    assert.is(ls.find((d: { hash: string }) => d.hash === 'c').deletionDeferred, true);
    release();
    // The next call's deferred pass records the removal and deletes it.
    assert.is((await h.ok('status')).deferredDeletedDeviceCount, 0);
    assert.not.ok((await h.ok('ls')).some((d: { hash: string }) => d.hash === 'c'));
    const types = (await h.run('dump', '--device', 'c')).out.trim().split('\n').map((l) => JSON.parse(l).type);
    assert.ok(types.includes('DeletionDeferred'), types.join(','));
    assert.ok(types.includes('DeviceDeleted'), types.join(','));
    const recs = (await h.run('dump', '--device', 'c', '--type', 'DeviceDeactivated')).out.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(recs.map((x) => [x.body.deferred, x.reason]), [[true, ''], [false, 'deferred removal completed']]);
  } finally { h.cleanup(); }
});

// ---- mount, umount, status ---------------------------------------------------------------------------------

test('mount: prints <home>/mnt/ID; it stays mounted for the next call; again is idempotent; umount; dump shows the events', async () => {
  const h = await initialised();
  try {
    await h.ok('create', 'web');
    const mp = path.join(h.home, 'mnt', 'web');
    let r = await h.run('mount', 'web');
    assert.is(r.code, EXIT.OK, r.err);
    assert.is(r.out, `${mp}\n`);
    assert.ok(await h.backend.mounted(mp), 'mounted after the call returned (the driver was closed, not cleaned up)');
    // A second process-like call sees it mounted.
    const ls = await h.ok('ls');
    assert.equal(ls.find((d: { hash: string }) => d.hash === 'web').mounts, [mp]);
    const st = await h.ok('status', 'web');
    assert.equal({ id: st.id, size: st.size, sizeInSectors: st.sizeInSectors }, { id: 'web', size: 64 * 2 ** 20, sizeInSectors: 131072 });
    assert.ok(Number.isInteger(st.deviceId) && Number.isInteger(st.transactionId) && Number.isInteger(st.mappedSectors));
    const snap = await h.ok('snapshot', 'web-snap', '--from', 'web');
    assert.is(snap.parent, 'web');
    assert.equal(h.backend.hazards, [], 'a mounted origin is suspended for its snapshot');
    assert.ok(await h.backend.mounted(mp));
    const again = await h.ok('mount', 'web');
    assert.is(again.path, mp);
    assert.match(again.device, /web$/);
    assert.ok(await h.backend.mounted(mp));
    assert.equal(await h.ok('rm', 'web-snap'), { id: 'web-snap', deleted: true, deferred: false });
    r = await h.run('rm', 'web');
    assert.is(r.code, EXIT.ERROR, 'mounted: busy');
    const u = await h.run('umount', 'web');
    assert.is(u.code, EXIT.OK, u.err);
    assert.is(u.out, `unmounted web from ${mp}\n`);
    assert.is(await h.backend.mounted(mp), null);
    r = await h.run('umount', 'web');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_NOT_FOUND: .*not mounted/);
    r = await h.run('mount', 'ghost');
    assert.is(r.code, EXIT.ERROR);
    assert.match(r.err, /^ERR_DEVICE_NOT_FOUND: /);
    r = await h.run('mount', 'web', '--label', 'bad label');
    assert.is(r.code, EXIT.USAGE);
    assert.match(r.err, /^ERR_BAD_OPTION: .*label/);
    const recs = (await h.run('dump', '--device', 'web')).out.trim().split('\n').map((l) => JSON.parse(l));
    const types = recs.map((x) => x.type);
    for (const t of ['SnapshotCreated', 'DeviceActivated', 'DeviceMounted', 'DeviceUnmounted', 'DeviceDeactivated']) assert.ok(types.includes(t), `${t} in ${types.join(',')}`);
    assert.is(recs.find((x) => x.type === 'DeviceMounted').body.path, mp);
    assert.ok(recs.every((x) => x.actor === 'thinjournal-cli'));
  } finally { h.cleanup(); }
});

test('mount --label adds the SELinux context to the mount options', async () => {
  const h = await initialised();
  try {
    await h.ok('create', 'lab');
    const m = await h.ok('mount', 'lab', '--label', 'system_u:object_r:container_file_t:s0');
    assert.match(m.options, /context="system_u:object_r:container_file_t:s0"/);
  } finally { h.cleanup(); }
});

test('status: the key/value pairs as text and --json (Status fields + driverStatus); unknown device', async () => {
  const h = await initialised();
  try {
    const r = await h.run('status');
    assert.is(r.code, EXIT.OK, r.err);
    const lines = r.out.trim().split('\n');
    assert.match(lines[0]!, /^Pool Name: +thinjournal-/);
    assert.ok(lines.some((l) => /^Deferred Removal Enabled: +true$/.test(l)));
    assert.ok(lines.some((l) => /^Data loop file: +\/.*devicemapper\/data$/.test(l)));
    const j = await h.ok('status');
    assert.equal(Object.fromEntries(j.driverStatus)['Pool Name'], j.poolName);
    assert.is(j.dataLoopback, path.join(h.home, 'devicemapper', 'data'));
    assert.ok(j.data.used > 0 && j.data.available === j.data.total - j.data.used);
    const e = await h.run('status', 'nope');
    assert.is(e.code, EXIT.ERROR);
    assert.match(e.err, /^ERR_DEVICE_NOT_FOUND: /);
  } finally { h.cleanup(); }
});

// ---- shutdown, drift, --help, the binary ------------------------------------------------------------------

test('shutdown: unmounts, removes the pool; the next call re-creates it from the journal (nothing re-mounted)', async () => {
  const h = await initialised();
  try {
    await h.ok('create', 'a');
    const mp = (await h.ok('mount', 'a')).path;
    const j = await h.ok('shutdown');
    assert.is(j.shutdown, true);
    assert.is(await h.backend.info(j.poolName), null, 'pool removed');
    assert.is(await h.backend.mounted(mp), null, 'unmounted');
    const st = await h.ok('status');
    assert.is(st.poolName, j.poolName);
    assert.ok(await h.backend.info(j.poolName), 'pool re-created by the next call');
    assert.is(await h.backend.mounted(mp), null);
    assert.ok((await h.ok('ls')).some((d: { hash: string }) => d.hash === 'a'));
  } finally { h.cleanup(); }
});

test('drift at start-up: exit 3 and nothing changed', async () => {
  const h = await initialised();
  try {
    const pool = (await h.ok('status')).poolName;
    await h.backend.createThin(pool, 4242); // a thin device the journal cannot explain
    const before = await h.head();
    const r = await h.run('create', 'a');
    assert.is(r.code, EXIT.DRIFT, r.err);
    assert.match(r.err, /^ERR_THINPOOL_INIT: .*disagree/);
    assert.is(await h.head(), before);
    assert.ok((await h.backend.poolMetadata(pool)).ids.includes(4242));
  } finally { h.cleanup(); }
});

test('a journal held by another handle (a running daemon): ERR_JOURNAL_LOCKED, exit 1, the kernel untouched', async () => {
  const h = await initialised();
  try {
    const holder = await Journal.open(path.join(h.home, 'journal'));
    try {
      for (const args of [['create', 'a'], ['status'], ['init']]) {
        const r = await h.run(...args);
        assert.is(r.code, EXIT.ERROR, args.join(' '));
        assert.match(r.err, /^ERR_JOURNAL_LOCKED: /);
      }
    } finally { await holder.close(); }
    assert.not.ok((await h.ok('ls')).some((d: { hash: string }) => d.hash === 'a'));
  } finally { h.cleanup(); }
});

test('--help of every device command shows usage, an example and the exit codes; the command list has them', async () => {
  for (const c of ['init', 'create', 'snapshot', 'rm', 'mount', 'umount', 'status', 'shutdown']) {
    const io = capture();
    assert.is(await main([c, '--help'], io), EXIT.OK);
    assert.match(io.out(), new RegExp(`^thinjournal ${c}`));
    assert.match(io.out(), new RegExp(`example:\\n  .*thinjournal ${c}`));
    assert.match(io.out(), /2 usage or malformed input \(refused, nothing done\), 3 drift found, 4 corruption found/);
  }
  const io = capture();
  assert.is(await main(['--help'], io), EXIT.OK);
  for (const c of ['init', 'create', 'snapshot', 'rm', 'mount', 'umount', 'status', 'shutdown', 'ls', 'lineage']) assert.match(io.out(), new RegExp(`\\n  ${c} +\\S`));
});

test('the binary: a missing argument is exit 2; without device-mapper a device command is ERR_NATIVE_UNAVAILABLE, exit 1', () => {
  const home = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-bin-'));
  try {
    let r = spawnSync(process.execPath, [BIN, 'create', '--home', home], { encoding: 'utf8' });
    assert.is(r.status, EXIT.USAGE, r.stderr);
    assert.match(r.stderr, /^usage: missing ID\nthinjournal create ID/);
    // A node at /dev/mapper/control proves nothing (installing dmsetup or containerd makes one): ask the probe.
    if (probeDeviceMapper().available) return; // a real dm host: the rest would touch the kernel
    r = spawnSync(process.execPath, [BIN, 'init', '--home', home, '--opt', 'dm.loopdatasize=256M'], { encoding: 'utf8' });
    assert.is(r.status, EXIT.ERROR);
    assert.match(r.stderr, /^ERR_NATIVE_UNAVAILABLE: /);
    assert.not.ok(existsSync(path.join(home, 'journal')));
  } finally { rmSync(home, { recursive: true, force: true }); }
});

test.run();
