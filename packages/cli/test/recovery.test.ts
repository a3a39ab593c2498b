// recover, replay, lineage and ls on the model backend (injected through Io.backend; the binary uses the kernel's).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Journal } from '@thinjournal/journal';
import { ModelBackend, probeDeviceMapper } from '@thinjournal/dm';
import { Engine } from '@thinjournal/reconciler';
import { main, EXIT, type Io } from '../src/index.js';

const G = 2 ** 30, M = 2 ** 20;

function capture(backend?: ModelBackend): Io & { out: () => string; err: () => string } {
  let out = '', err = '';
  return { stdout: { write: (s: string) => (out += s), isTTY: false }, stderr: { write: (s: string) => (err += s), isTTY: false }, env: {}, ...(backend ? { backend } : {}), out: () => out, err: () => err };
}

/** A home whose last operation (addDevice "c") died after its intent and create_snap, before set_transaction_id. */
async function crashedHome() {
  const home = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-rec-'));
  const backend = new ModelBackend();
  backend.addDisk('/dev/vdm', 64 * M);
  backend.addDisk('/dev/vdd', 8 * G);
  backend.addDisk('/dev/spare-m', 64 * M);
  backend.addDisk('/dev/spare-d', 8 * G);
  backend.mkdir('/mnt/a');
  let crash!: () => void;
  const crashed = new Promise<void>((r) => (crash = r));
  let armed = false;
  const journal = await Journal.open(path.join(home, 'journal'));
  const e = await Engine.open(journal, backend, { onPoint: (p) => { if (armed && p === 'after-step-1') { crash(); return new Promise(() => {}); } } });
  await e.execute({ type: 'initPool', poolName: 'tj', devicePrefix: 'tj', dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', loopback: false, dataSize: 4 * G, metadataSize: 64 * M, blockSize: 65536 });
  await e.execute({ type: 'createBaseImage', size: G, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' });
  await e.execute({ type: 'addDevice', hash: 'a', baseHash: '' });
  await e.execute({ type: 'addDevice', hash: 'b', baseHash: 'a' });
  await e.execute({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  armed = true;
  void e.execute({ type: 'addDevice', hash: 'c', baseHash: 'b' });
  await crashed;
  await journal.close();
  return { home, backend, cleanup: () => rmSync(home, { recursive: true, force: true }) };
}

test('recover --dry-run prints the plan and changes nothing; recover applies it; a second recover is in sync', async () => {
  const h = await crashedHome();
  try {
    const before = await h.backend.poolMetadata('tj');
    let io = capture(h.backend);
    assert.is(await main(['recover', '--home', h.home, '--dry-run', '--json'], io), EXIT.OK, io.err());
    const dry = JSON.parse(io.out());
    assert.is(dry.plan.verdict, 'roll-back');
    assert.equal(dry.plan.steps.map((s: { kind: string }) => s.kind), ['deleteThin', 'append']);
    assert.equal(await h.backend.poolMetadata('tj'), before, 'dry run changed nothing');
    io = capture(h.backend);
    assert.is(await main(['recover', '--home', h.home], io), EXIT.OK, io.err());
    assert.match(io.out(), /verdict: roll-back/);
    assert.match(io.out(), /applied: 2 steps/);
    assert.equal((await h.backend.poolMetadata('tj')).ids, [1, 2, 3]);
    io = capture(h.backend);
    assert.is(await main(['recover', '--home', h.home, '--json'], io), EXIT.OK);
    assert.is(JSON.parse(io.out()).plan.verdict, 'in-sync');
  } finally { h.cleanup(); }
});

test('recover on drift: exit 3, a precise report, nothing changed; --repair applies the offered plan', async () => {
  const h = await crashedHome();
  try {
    await main(['recover', '--home', h.home], capture(h.backend));
    await h.backend.createThin('tj', 4242); // someone else's thin device
    let io = capture(h.backend);
    assert.is(await main(['recover', '--home', h.home], io), EXIT.DRIFT);
    assert.match(io.out(), /thin ids only in the kernel: 4242/);
    assert.ok((await h.backend.poolMetadata('tj')).ids.includes(4242), 'nothing changed');
    io = capture(h.backend);
    assert.is(await main(['recover', '--home', h.home, '--repair'], io), EXIT.OK, io.out());
    assert.ok(!(await h.backend.poolMetadata('tj')).ids.includes(4242));
    assert.not.match(io.out(), /nothing was changed/, 'one truthful message');
    assert.match(io.out(), /repair \(confirmed by --repair; journaled\)/);
    assert.match(io.out(), /repair applied: 1 steps/);
    // The repair is journaled: intent (the drift, every step) before the kernel change, then the outcome.
    io = capture(h.backend);
    await main(['dump', '--home', h.home, '--json'], io);
    const recs = io.out().trim().split('\n').map((l) => JSON.parse(l) as { type: string; actor: string; body: { steps?: string[]; completed?: number } });
    const repairs = recs.filter((r) => r.type.startsWith('Repair'));
    assert.equal(repairs.map((r) => r.type), ['RepairBegan', 'RepairCompleted']);
    assert.equal(repairs[0]!.body.steps, ['delete thin id 4242']);
    assert.is(repairs[0]!.actor, 'thinjournal-cli');
    assert.is(repairs[1]!.body.completed, 1);
    io = capture(h.backend);
    assert.is(await main(['recover', '--home', h.home, '--json'], io), EXIT.OK);
    assert.is(JSON.parse(io.out()).plan.verdict, 'in-sync');
  } finally { h.cleanup(); }
});

test('verify --kernel: exit 0 when the kernel agrees, 3 with the drift named when it does not; the journal is untouched', async () => {
  const h = await crashedHome();
  try {
    let io = capture(h.backend);
    assert.is(await main(['verify', '--home', h.home, '--kernel', '--json'], io), EXIT.OK, io.err());
    assert.is(JSON.parse(io.out()).kernel.verdict, 'roll-back', 'a pending intent is explained, not drift');
    await main(['recover', '--home', h.home], capture(h.backend));
    await h.backend.createThin('tj', 77);
    io = capture(h.backend);
    assert.is(await main(['verify', '--home', h.home, '--kernel'], io), EXIT.DRIFT);
    assert.match(io.out(), /^ok: \d+ records/);
    assert.match(io.out(), /kernel: verdict: drift/);
    assert.match(io.out(), /thin ids only in the kernel: 77/);
  } finally { h.cleanup(); }
});

test('replay --dry-run needs no kernel; replay rebuilds on spare devices and matches; --to tx:N; bad --to is a usage error', async () => {
  const h = await crashedHome();
  try {
    await main(['recover', '--home', h.home], capture(h.backend));
    let io = capture();
    assert.is(await main(['replay', '--home', h.home, '--dry-run', '--json'], io), EXIT.OK, io.err());
    const dry = JSON.parse(io.out());
    assert.match(dry.note, /data is not in the journal/);
    assert.equal(dry.skippedTransactions.map((s: { outcome: string }) => s.outcome), ['rolled-back']);
    io = capture(h.backend);
    assert.is(await main(['replay', '--home', h.home, '--metadata-device', '/dev/spare-m', '--data-device', '/dev/spare-d', '--pool-name', 'again', '--json'], io), EXIT.OK, io.err());
    const r = JSON.parse(io.out());
    assert.is(r.matches, true);
    assert.equal(r.ids, (await h.backend.poolMetadata('tj')).ids);
    io = capture();
    assert.is(await main(['replay', '--home', h.home, '--to', 'tx:2', '--dry-run', '--json'], io), EXIT.OK);
    assert.is(JSON.parse(io.out()).transactionId, 2);
    io = capture();
    assert.is(await main(['replay', '--home', h.home, '--to', 'yesterday'], io), EXIT.USAGE);
    assert.match(io.err(), /yesterday/);
  } finally { h.cleanup(); }
});

test('lineage as text, dot and mermaid; ls as JSON', async () => {
  const h = await crashedHome();
  try {
    await main(['recover', '--home', h.home], capture(h.backend));
    let io = capture();
    assert.is(await main(['lineage', '--home', h.home], io), EXIT.OK, io.err());
    assert.is(io.out(), '(base) #1\n└── a #2 [active, mounted /mnt/a]\n    └── b #3\n');
    io = capture();
    await main(['lineage', '--home', h.home, '--format', 'dot'], io);
    assert.match(io.out(), /"1" -> "2";\n/);
    assert.match(io.out(), /"2" -> "3";\n/);
    io = capture();
    await main(['lineage', '--home', h.home, '--format', 'mermaid'], io);
    assert.match(io.out(), /^graph LR\n/);
    assert.match(io.out(), /d2 --> d3/);
    io = capture();
    assert.is(await main(['lineage', '--home', h.home, '--format', 'svg'], io), EXIT.USAGE);
    io = capture();
    assert.is(await main(['ls', '--home', h.home], io), EXIT.OK);
    const ls = JSON.parse(io.out());
    assert.equal(ls.map((d: { hash: string }) => d.hash), ['', 'a', 'b']);
    assert.equal(ls[1].mounts, ['/mnt/a']);
  } finally { h.cleanup(); }
});

test('recover without device-mapper and no injected backend: a coded error, exit 1', async () => {
  const h = await crashedHome();
  try {
    const io = capture();
    const code = await main(['recover', '--home', h.home], io);
    if (probeDeviceMapper().available) return; // a real dm host (the probe's word, not a node's existence): skip this check
    assert.is(code, EXIT.ERROR);
    assert.match(io.err(), /^ERR_NATIVE_UNAVAILABLE: /);
  } finally { h.cleanup(); }
});


test('after a reboot with other files on the old loop numbers: recover re-attaches the home\'s files by identity, no false drift', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-cli-reboot-'));
  const home = path.join(dir, 'home');
  const backend = new ModelBackend();
  const run = async (...args: string[]) => {
    const io = capture(backend);
    const code = await main([...args, '--home', home], io);
    return { code, out: io.out(), err: io.err() };
  };
  try {
    assert.is((await run('init', '--opt', 'dm.loopdatasize=1G', '--opt', 'dm.loopmetadatasize=64M', '--opt', 'dm.basesize=64M')).code, EXIT.OK);
    assert.is((await run('create', 'd1')).code, EXIT.OK);
    const pool = JSON.parse((await run('status', '--json')).out).poolName as string;
    const before = (await backend.poolTable(pool));
    backend.crash(); // devices, loops and mounts gone; the files stay
    backend.addFile('/other/a', 64 * M);
    backend.addFile('/other/b', 64 * M);
    const squat = [await backend.attachLoop('/other/a'), await backend.attachLoop('/other/b')];
    assert.equal(squat, ['/dev/loop0', '/dev/loop1'], 'other files hold the pool\'s old loop numbers');
    const audit = await run('verify', '--kernel', '--json');
    assert.is(audit.code, EXIT.OK, audit.out + audit.err);
    assert.is(JSON.parse(audit.out).kernel.verdict, 'complete');
    const dry = await run('recover', '--dry-run');
    assert.is(dry.code, EXIT.OK, dry.out);
    assert.match(dry.out, /would attach .*devicemapper\/data to a free loop device/);
    assert.is(await backend.info(pool), null, 'the dry run changed nothing');
    const r = await run('recover');
    assert.is(r.code, EXIT.OK, r.out + r.err);
    assert.match(r.out, /journaled: the pool's devices are now \/dev\/loop2 \(data\) and \/dev\/loop3 \(metadata\)/);
    const after = await backend.poolTable(pool);
    assert.equal([after.dataDevice, after.metadataDevice], [await backend.deviceNumber('/dev/loop2'), await backend.deviceNumber('/dev/loop3')]);
    assert.is.not(after.dataDevice, before.dataDevice);
    const again = await run('verify', '--kernel', '--json');
    assert.equal(JSON.parse(again.out).kernel.steps, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
