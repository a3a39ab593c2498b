import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { chunkKey, type JournalEvent } from '@thinjournal/spec';
import { Journal } from '@thinjournal/journal';
import { ModelBackend } from '@thinjournal/dm';
import { Engine } from '@thinjournal/reconciler';
import { main, EXIT, type Io } from '../src/index.js';

const BIN = fileURLToPath(new URL('../../bin/thinjournal.js', import.meta.url));

function capture(tty = false): Io & { out: () => string; err: () => string } {
  let out = '', err = '';
  return {
    stdout: { write: (s: string) => (out += s), isTTY: tty, columns: 200 },
    stderr: { write: (s: string) => (err += s), isTTY: false },
    env: {},
    out: () => out,
    err: () => err,
  };
}

async function home(): Promise<{ home: string; cleanup: () => void; hashes: string[] }> {
  const h = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-'));
  const j = await Journal.open(path.join(h, 'journal'), { actor: 'dockerd', clock: () => Date.parse('2026-11-24T10:00:00Z') });
  const ev = (type: string, txId: number, body: object): JournalEvent => ({ type, txId, body } as JournalEvent);
  const recs = [
    ...(await j.append([ev('TransactionBegan', 1, { op: 'addDevice', hash: 'layer1' }), ev('SnapshotCreated', 1, { hash: 'layer1', deviceId: 2, parentHash: '', parentDeviceId: 1, size: 1 << 30 })])),
    ...(await j.append([ev('TransactionCommitted', 1, {})])),
    ...(await j.append([{ ...ev('DeviceActivated', 1, { hash: 'layer1', deviceId: 2, name: 'pool-layer1', size: 1 << 30 }), actor: 'cli' }])),
    ...(await j.append([ev('DeviceMounted', 1, { hash: 'layer1', path: '/mnt/layer1' })])),
    ...(await j.append([ev('SnapshotCreated', 2, { hash: 'layer2', deviceId: 3, parentHash: 'layer1', parentDeviceId: 2, size: 1 << 30 })])),
  ];
  await j.close();
  return { home: h, cleanup: () => rmSync(h, { recursive: true, force: true }), hashes: recs.map((r) => r.hash) };
}

/**
 * A journal the model can replay (verify checks that too): a pool, the base image, a layer mounted — written
 * by the engine on a ModelBackend, one commit per record group. `chunks` are the seqs that start a chunk.
 */
async function validHome(): Promise<{ home: string; cleanup: () => void; head: number; chunks: number[] }> {
  const h = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-valid-'));
  const b = new ModelBackend();
  b.addDisk('/dev/vdm', 64 * 2 ** 20);
  b.addDisk('/dev/vdd', 4 * 2 ** 30);
  b.mkdir('/mnt/layer1');
  const j = await Journal.open(path.join(h, 'journal'), { actor: 'dockerd' });
  const e = await Engine.open(j, b);
  await e.execute({ type: 'initPool', poolName: 'tj', devicePrefix: 'tj', dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', loopback: false, dataSize: 4 * 2 ** 30, metadataSize: 64 * 2 ** 20, blockSize: 65536 });
  await e.execute({ type: 'createBaseImage', size: 2 ** 30, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' });
  await e.execute({ type: 'addDevice', hash: 'layer1', baseHash: '' });
  await e.execute({ type: 'mountDevice', hash: 'layer1', path: '/mnt/layer1' });
  const head = j.head().seq;
  await j.close();
  const db = new ClassicLevel<string, Uint8Array>(path.join(h, 'journal'), { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  const chunks = (await db.keys({ gte: 'r', lt: 's' }).all()).map((k) => parseInt(k.slice(1), 16));
  await db.close();
  return { home: h, cleanup: () => rmSync(h, { recursive: true, force: true }), head, chunks };
}

test('dump piped: JSON Lines, one record a line, parseable, chain fields included', async () => {
  const h = await home();
  try {
    const io = capture(false);
    assert.is(await main(['dump', '--home', h.home], io), EXIT.OK, io.err());
    const lines = io.out().trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.map((l) => l.seq), [1, 2, 3, 4, 5, 6]);
    assert.equal(lines.map((l) => l.hash), h.hashes);
    assert.is(lines[1].body.parentHash, '');
    assert.is(lines[3].actor, 'cli');
  } finally { h.cleanup(); }
});

test('dump filters: --device (hash or parent), --type list, --actor, --since/--until by seq and by time', async () => {
  const h = await home();
  try {
    const seqs = async (...args: string[]) => {
      const io = capture(false);
      const code = await main(['dump', '--home', h.home, ...args], io);
      assert.is(code, EXIT.OK, io.err());
      return io.out().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).seq);
    };
    assert.equal(await seqs('--device', 'layer1'), [1, 2, 4, 5, 6]);
    assert.equal(await seqs('--type', 'DeviceActivated,DeviceMounted'), [4, 5]);
    assert.equal(await seqs('--actor', 'cli'), [4]);
    assert.equal(await seqs('--since', '3', '--until', '5'), [3, 4, 5]);
    assert.equal(await seqs('--since', '2026-11-24T09:00:00Z'), [1, 2, 3, 4, 5, 6]);
    assert.equal(await seqs('--until', '2026-11-24T09:00:00Z'), []);
  } finally { h.cleanup(); }
});

test('usage errors: exit 2 and the offending text on stderr', async () => {
  const h = await home();
  try {
    for (const [args, text] of [
      [['dump', '--home', h.home, '--since', 'yesterday-ish'], 'yesterday-ish'],
      [['dump', '--home', h.home, '--type', 'DeviceTeleported'], 'DeviceTeleported'],
      [['dump', '--home', h.home, '--bogus'], '--bogus'],
      [['frobnicate'], 'frobnicate'],
      [['tail', '--home', h.home, '-n', 'many'], 'many'],
    ] as [string[], string][]) {
      const io = capture();
      assert.is(await main(args, io), EXIT.USAGE, args.join(' '));
      assert.ok(io.err().includes(text), `${args.join(' ')} → ${io.err()}`);
      assert.is(io.out(), '');
    }
  } finally { h.cleanup(); }
});

test('empty, blank, repeated, contradictory and meaningless option values: exit 2 naming the text, nothing read or done', async () => {
  const h = await home();
  try {
    const H = ['--home', h.home];
    for (const [args, text] of [
      [['tail', ...H, '-n', ''], 'usage: -n is empty'],
      [['tail', ...H, '-n', ' 5'], '-n " 5" is not a count'],
      [['tail', ...H, '-n', '1e3'], '-n "1e3" is not a count'],
      [['tail', ...H, '--interval', '100'], '--interval 100 applies only with -f'],
      [['tail', ...H, '-f', '--interval', '99999999999'], '--interval "99999999999" must be a whole number of milliseconds from 50 to 2147483647'],
      [['tail', ...H, '-f', '--interval', '0x100'], '--interval "0x100"'],
      [['dump', ...H, '--type', ''], 'usage: --type is empty'],
      [['dump', ...H, '--type', 'DeviceMounted,,DeviceUnmounted'], '--type "DeviceMounted,,DeviceUnmounted" has an empty entry'],
      [['dump', ...H, '--type', 'DeviceMounted', '--type', 'DeviceUnmounted'], '--type given twice ("DeviceMounted", then "DeviceUnmounted")'],
      [['dump', ...H, '--since', ''], 'usage: --since is empty'],
      [['dump', ...H, '--until', ' '], '--until " " is blank'],
      [['dump', ...H, '--since', '5', '--until', '3'], '--since 5 is after --until 3: no record can match'],
      [['dump', ...H, '--since', '2026-11-25', '--until', '2026-11-24'], '--since 2026-11-25 is after --until 2026-11-24'],
      [['dump', ...H, '--device', ''], 'usage: --device is empty'],
      [['dump', ...H, '--actor', ''], 'usage: --actor is empty'],
      [['dump', '--home', ''], 'usage: --home is empty'],
      [['tail', ...H, '--device', ''], 'usage: --device is empty'],
      [['lineage', ...H, '--format', ''], 'usage: --format is empty'],
      [['lineage', ...H, '--json', '--format', 'dot'], '--json and --format contradict each other'],
      [['recover', ...H, '--dry-run', '--repair'], '--dry-run and --repair contradict each other'],
      [['replay', ...H, '--pool-name', 'a/b'], '--pool-name "a/b" contains "/"'],
      [['replay', ...H, '--pool-name', '..'], '--pool-name ".." is empty, "." or ".."'],
      [['replay', ...H, '--pool-name', 'p'.repeat(128)], 'is longer than 127 bytes'],
      [['replay', ...H, '--pool-name', ''], 'usage: --pool-name is empty'],
      [['replay', ...H, '--data-device', '', '--dry-run'], 'usage: --data-device is empty'],
      [['replay', ...H, '--metadata-device', 'sdc1', '--dry-run'], '--metadata-device "sdc1" is not an absolute path'],
      [['replay', ...H, '--metadata-device', '/dev/sdc', '--data-device', '/dev/sdc', '--dry-run'], '--metadata-device and --data-device are both "/dev/sdc"'],
      [['replay', ...H, '--to', '', '--dry-run'], 'usage: --to is empty'],
      [['replay', ...H, '--to', '0', '--dry-run'], '--to 0: seqs start at 1'],
      [['help', 'frobnicate'], 'usage: unknown command "frobnicate"; see thinjournal --help'],
      [['--help', 'frobnicate'], 'usage: unknown command "frobnicate"; see thinjournal --help'],
      [['help', 'dump', 'extra'], 'usage: unexpected argument "extra"'],
    ] as [string[], string][]) {
      const io = capture();
      assert.is(await main(args, io), EXIT.USAGE, `${args.join(' ')} → ${io.err()}`);
      assert.ok(io.err().includes(text), `${args.join(' ')} → ${io.err()}`);
      assert.is(io.out(), '', args.join(' '));
    }
    // A --device that no device can have is malformed input too (ERR_BAD_ID, exit 2).
    const io = capture();
    assert.is(await main(['dump', ...H, '--device', 'a/b'], io), EXIT.USAGE);
    assert.is(io.err(), 'ERR_BAD_ID: --device "a/b" contains a path separator\n');
    // help COMMAND is that command's help, as COMMAND --help.
    const a = capture(), b = capture();
    assert.is(await main(['help', 'tail'], a), EXIT.OK);
    assert.is(await main(['tail', '--help'], b), EXIT.OK);
    assert.is(a.out(), b.out());
    assert.match(a.out(), /^thinjournal tail /);
  } finally { h.cleanup(); }
});

test('dump --device base selects the base image\'s records (its hash is empty) and its snapshots\'', async () => {
  const h = await home();
  try {
    const io = capture();
    assert.is(await main(['dump', '--home', h.home, '--device', 'base'], io), EXIT.OK, io.err());
    assert.equal(io.out().trim().split('\n').map((l) => JSON.parse(l).seq), [2], 'layer1 is a snapshot of the base image');
  } finally { h.cleanup(); }
});

/**
 * A journal with a pool, a base image and `n` snapshots of it (3 records each): dump, tail, ls and lineage all
 * print far more than a pipe holds (64 KiB), so a reader that leaves early makes the writer meet EPIPE.
 */
async function bigHome(n: number): Promise<{ home: string; cleanup: () => void }> {
  const h = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-big-'));
  const j = await Journal.open(path.join(h, 'journal'), { actor: 'dockerd' });
  const ev = (type: string, txId: number, body: object): JournalEvent => ({ type, txId, body } as JournalEvent);
  const events: JournalEvent[] = [
    ev('PoolInitialised', 0, { poolName: 'big-pool', devicePrefix: 'big', dataDevice: '/dev/loop0', metadataDevice: '/dev/loop1', loopback: true, dataSize: 2 ** 40, metadataSize: 2 ** 30, blockSize: 65536 }),
    ev('TransactionBegan', 1, { op: 'createBaseImage', hash: '' }),
    ev('BaseImageCreated', 1, { hash: '', deviceId: 1, size: 1 << 30, fs: 'ext4', uuid: '6f1c2a5e-1b8e-4c61-9a49-2f8f9ad3c0b7' }),
    ev('TransactionCommitted', 1, {}),
  ];
  for (let i = 0; i < n; i++) {
    const tx = i + 2, hash = `layer-${String(i).padStart(6, '0')}`;
    events.push(ev('TransactionBegan', tx, { op: 'addDevice', hash }), ev('SnapshotCreated', tx, { hash, deviceId: i + 2, parentHash: '', parentDeviceId: 1, size: 1 << 30 }), ev('TransactionCommitted', tx, {}));
  }
  await j.append(events);
  await j.close();
  return { home: h, cleanup: () => rmSync(h, { recursive: true, force: true }) };
}

test('the binary: a reader that closes the pipe early (| head) ends dump, tail, ls and lineage quietly with exit 0', async () => {
  const h = await bigHome(5000);
  try {
    for (const [args, reader] of [
      [['dump'], 'head -1'], [['dump', '--verify'], 'head -1'], [['tail', '-n', '15000'], 'head -1'],
      [['ls'], 'head -c 1'], [['lineage'], 'head -1'], [['lineage', '--format', 'dot'], 'head -1'],
    ] as [string[], string][]) {
      const err = path.join(h.home, 'stderr');
      // bash: PIPESTATUS[0] is the writer's status (head's own is 0 either way).
      const r = spawnSync('bash', ['-c', `"$@" 2>"${err}" | ${reader} >/dev/null; exit "\${PIPESTATUS[0]}"`, 'sh', process.execPath, BIN, ...args, '--home', h.home], { encoding: 'utf8' });
      const stderr = readFileSync(err, 'utf8');
      assert.is(r.status, EXIT.OK, `${args.join(' ')} | ${reader}: status ${r.status}, stderr ${stderr}`);
      assert.is(stderr, '', `${args.join(' ')} | ${reader}: nothing on stderr`);
    }
  } finally { h.cleanup(); }
});

test('the binary: output to a full disk (/dev/full) is ERR_OUTPUT with the errno on stderr, exit 1, no stack trace', async () => {
  const h = await bigHome(50);
  try {
    for (const args of [['dump'], ['tail'], ['ls'], ['lineage'], ['verify'], ['--help']]) {
      const full = openSync('/dev/full', 'w');
      let r;
      try {
        r = spawnSync(process.execPath, [BIN, ...args, ...(args[0] === '--help' ? [] : ['--home', h.home])], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
      } finally { closeSync(full); }
      assert.is(r.status, EXIT.ERROR, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.stderr, 'ERR_OUTPUT: writing the command\'s output to stdout failed: ENOSPC: no space left on device, write\n', args.join(' '));
    }
  } finally { h.cleanup(); }
});

test('verify: exit 0 and --json on a good chain; exit 4 naming the seq after tampering; dump --verify too', async () => {
  const h = await validHome();
  try {
    let io = capture();
    assert.is(await main(['verify', '--home', h.home, '--json'], io), EXIT.OK, io.err() + io.out());
    const ok = JSON.parse(io.out());
    assert.is(ok.ok, true);
    assert.is(ok.records, h.head);
    assert.is(ok.model, true);
    const gone = h.chunks[2]!;
    const db = new ClassicLevel<string, Uint8Array>(path.join(h.home, 'journal'), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    await db.del(chunkKey(gone));
    await db.close();
    io = capture();
    assert.is(await main(['verify', '--home', h.home, '--json'], io), EXIT.CORRUPT);
    const bad = JSON.parse(io.out());
    assert.equal({ ok: bad.ok, seq: bad.seq, reason: bad.reason }, { ok: false, seq: gone, reason: 'gap' });
    io = capture();
    assert.is(await main(['dump', '--home', h.home, '--verify'], io), EXIT.CORRUPT);
    assert.equal(io.out().trim().split('\n').map((l) => JSON.parse(l).seq), Array.from({ length: gone - 1 }, (_, i) => i + 1), 'prints what verified, up to the break');
    assert.match(io.err(), new RegExp(`ERR_JOURNAL_CORRUPT: journal is corrupt at seq ${gone}: gap`));
  } finally { h.cleanup(); }
});

test('verify replays the model: a chain-valid record the model cannot apply is corruption naming its seq', async () => {
  const h = await home(); // records without a pool: a chain the model cannot have written
  try {
    const io = capture();
    assert.is(await main(['verify', '--home', h.home], io), EXIT.CORRUPT, io.out());
    assert.match(io.out(), /CORRUPT \(ERR_JOURNAL_CORRUPT\) at seq 1: model: the model cannot apply record 1 \(TransactionBegan\)/);
  } finally { h.cleanup(); }
});

test('a journal held by another handle is read from a private copy; tail prints the last N', async () => {
  const h = await validHome();
  try {
    const holder = await Journal.open(path.join(h.home, 'journal'));
    const txId = (await holder.read()).at(-1)!.txId;
    await holder.append([{ type: 'DeviceUnmounted', txId, body: { hash: 'layer1', path: '/mnt/layer1' } }]);
    const io = capture();
    assert.is(await main(['tail', '--home', h.home, '-n', '2'], io), EXIT.OK, io.err());
    assert.equal(io.out().trim().split('\n').map((l) => JSON.parse(l).seq), [h.head, h.head + 1]);
    await holder.append([{ type: 'DeviceDeactivated', txId, body: { hash: 'layer1', deferred: false } }]);
    const io2 = capture();
    assert.is(await main(['verify', '--home', h.home], io2), EXIT.OK, io2.err() + io2.out());
    assert.match(io2.out(), new RegExp(`ok: ${h.head + 2} records`));
    await holder.close();
  } finally { h.cleanup(); }
});

test('the real binary under a pseudo-terminal prints an aligned table; piped it prints JSON Lines', async () => {
  const h = await home();
  try {
    const piped = spawnSync(process.execPath, [BIN, 'dump', '--home', h.home], { encoding: 'utf8' });
    assert.is(piped.status, 0, piped.stderr);
    assert.is(JSON.parse(piped.stdout.split('\n')[0]!).seq, 1);
    const tty = spawnSync('script', ['-qec', `${process.execPath} ${BIN} dump --home ${h.home}`, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '200' } });
    assert.is(tty.status, 0, tty.stderr);
    const lines = tty.stdout.replace(/\r/g, '').trim().split('\n');
    assert.match(lines[0]!, /^seq\s+time\s+tx\s+actor\s+type\s+device\s+detail/);
    assert.is(lines.length, 7);
    assert.match(lines[2]!, /^2\s+2026-11-24 10:00:00\.000\s+1\s+dockerd\s+SnapshotCreated\s+layer1\s+deviceId=2/);
    const col = lines[0]!.indexOf('type');
    for (const l of lines.slice(1)) assert.ok(/[A-Z]/.test(l[col]!), `aligned: ${l}`);
  } finally { h.cleanup(); }
});

test('--help for each command shows usage, an example and the exit codes', async () => {
  for (const c of ['dump', 'verify', 'tail']) {
    const io = capture();
    assert.is(await main([c, '--help'], io), EXIT.OK);
    assert.match(io.out(), /example:/);
    assert.match(io.out(), /exit codes: 0 ok \(also when the reader of the output closed the pipe\), 1 error, 2 usage or malformed input \(refused, nothing done\), 3 drift found, 4 corruption found/);
  }
  const io = capture();
  assert.is(await main([], io), EXIT.USAGE);
  assert.match(io.out(), /commands:/);
  assert.match(io.out(), /exit codes: 0 ok .*2 usage or malformed input/);
});

test.run();
