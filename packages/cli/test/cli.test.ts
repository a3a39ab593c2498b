import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { chunkKey, type JournalEvent } from '@thinjournal/spec';
import { Journal } from '@thinjournal/journal';
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

test('verify: exit 0 and --json on a good chain; exit 4 naming the seq after tampering; dump --verify too', async () => {
  const h = await home();
  try {
    let io = capture();
    assert.is(await main(['verify', '--home', h.home, '--json'], io), EXIT.OK);
    const ok = JSON.parse(io.out());
    assert.is(ok.ok, true);
    assert.is(ok.records, 6);
    const db = new ClassicLevel<string, Uint8Array>(path.join(h.home, 'journal'), { keyEncoding: 'utf8', valueEncoding: 'view' });
    await db.open();
    await db.del(chunkKey(4));
    await db.close();
    io = capture();
    assert.is(await main(['verify', '--home', h.home, '--json'], io), EXIT.CORRUPT);
    const bad = JSON.parse(io.out());
    assert.equal({ ok: bad.ok, seq: bad.seq, reason: bad.reason }, { ok: false, seq: 4, reason: 'gap' });
    io = capture();
    assert.is(await main(['dump', '--home', h.home, '--verify'], io), EXIT.CORRUPT);
    assert.equal(io.out().trim().split('\n').map((l) => JSON.parse(l).seq), [1, 2, 3], 'prints what verified, up to the break');
    assert.match(io.err(), /ERR_JOURNAL_CORRUPT: chain broken at seq 4: gap/);
  } finally { h.cleanup(); }
});

test('a journal held by another handle is read from a consistent copy; tail prints the last N', async () => {
  const h = await home();
  try {
    const holder = await Journal.open(path.join(h.home, 'journal'));
    await holder.append([{ type: 'DeviceUnmounted', txId: 2, body: { hash: 'layer1', path: '/mnt/layer1' } }]);
    const io = capture();
    assert.is(await main(['tail', '--home', h.home, '-n', '2'], io), EXIT.OK, io.err());
    assert.equal(io.out().trim().split('\n').map((l) => JSON.parse(l).seq), [6, 7]);
    await holder.append([{ type: 'DeviceDeactivated', txId: 2, body: { hash: 'layer1', deferred: false } }]);
    const io2 = capture();
    assert.is(await main(['verify', '--home', h.home], io2), EXIT.OK, io2.err());
    assert.match(io2.out(), /ok: 8 records/);
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
    assert.match(io.out(), /4 corruption found/);
  }
  const io = capture();
  assert.is(await main([], io), EXIT.USAGE);
  assert.match(io.out(), /commands:/);
});

test.run();
