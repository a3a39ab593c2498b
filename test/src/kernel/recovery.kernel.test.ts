// Recovery driven from outside, on a real kernel, as an operator meets it: `thinjournal recover` and
// `verify --kernel` after a reboot (loops detached, devices removed, other files on the old loop numbers), on
// two homes whose loop numbers swap, on a pool grown behind the journal's back, after sabotage (a table
// replaced by `error`, a suspended pool, a stray device under the prefix), and the repairs journaled.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KernelBackend, parseMountInfo, thinPoolTable } from '../../../packages/dm/dist/src/index.js';
import { EXIT } from '../../../packages/cli/dist/src/index.js';
import { cliOn, kernelUnavailable, removeKernelLeftovers } from './kernel-harness.js';

const MiB = 2 ** 20;
const SMALL = ['--opt', 'dm.loopdatasize=256M', '--opt', 'dm.loopmetadatasize=16M', '--opt', 'dm.basesize=32M', '--opt', 'dm.fs=ext4'];

interface Run { code: number; out: string; err: string }
interface Rec { type: string; actor: string; reason: string; body: { [k: string]: unknown } }

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel recovery tests skipped: ${why}`);
  test.skip('recovery from outside on a real kernel', () => {});
} else {
  const b = new KernelBackend();
  const top = mkdtempSync(path.join(os.tmpdir(), 'tjr-'));

  /** `thinjournal ARGS --home HOME` in this process on the kernel backend (json: --json, exit 0 asserted). */
  const cli = (home: string, ...args: string[]): Promise<Run> => cliOn(b, home).run(...args);
  const json = (home: string, ...args: string[]): Promise<any> => cliOn(b, home).ok(...args);
  const dump = async (home: string): Promise<Rec[]> => (await cli(home, 'dump')).out.trim().split('\n').map((l) => JSON.parse(l) as Rec);
  const files = (home: string) => ({ data: path.join(home, 'devicemapper', 'data'), metadata: path.join(home, 'devicemapper', 'metadata') });
  const poolOf = async (home: string): Promise<string> => (await json(home, 'status')).poolName;
  const prefixOf = (pool: string) => pool.slice(0, -'-pool'.length);

  /** What a reboot leaves: no mount under home, no dm device of the home, no loop on its files. */
  const reboot = async (home: string, pool: string): Promise<void> => {
    const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => m.mountPoint).filter((p) => p.startsWith(home + '/'));
    for (const m of mounts.sort().reverse()) await b.umount(m);
    for (const n of (await b.listDevices()).map((d) => d.name).filter((x) => x.startsWith(prefixOf(pool) + '-') && x !== pool)) await b.remove(n);
    if (await b.info(pool)) await b.remove(pool);
    for (const f of Object.values(files(home))) {
      for (let l = await b.findLoop(f); l; l = await b.findLoop(f)) await b.detachLoop(l);
    }
  };
  let decoys = 0;
  const decoy = (name: string, bytes: number): string => {
    const f = path.join(top, `${name}-${decoys++}`);
    writeFileSync(f, '');
    truncateSync(f, bytes);
    return f;
  };
  /** Loops holding filler files (detached at the end), so that a chosen loop number can be taken. */
  const fillers: string[] = [];
  /**
   * Attaches `file` on loop device `want` (free): the kernel offers the lowest free number, so lower free ones
   * are taken by fillers first.
   */
  const attachAt = async (file: string, want: string): Promise<string> => {
    for (let i = 0; i < 32; i++) {
      const l = await b.attachLoop(file);
      if (l === want) return l;
      await b.detachLoop(l);
      fillers.push(await b.attachLoop(decoy('filler', MiB)));
    }
    throw new Error(`could not attach ${file} on ${want}`);
  };
  /** Written through to the device (a table replaced under the filesystem must not take it with the page cache). */
  const writeDurably = (file: string, text: string): void => {
    const fd = openSync(file, 'w');
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  const tableDevices = async (pool: string) => {
    const t = await b.poolTable(pool);
    return [t.dataDevice, t.metadataDevice];
  };
  const fileNumbers = async (home: string) => {
    const f = files(home);
    return [await b.deviceNumber((await b.findLoop(f.data))!), await b.deviceNumber((await b.findLoop(f.metadata))!)];
  };

  test('after a reboot with other files on the old loop numbers: recover re-attaches the pool\'s files, re-creates and re-mounts; no false drift', async () => {
    const home = path.join(top, 'reboot');
    await json(home, 'init', ...SMALL);
    await json(home, 'create', 'd1');
    const m = await json(home, 'mount', 'd1');
    writeFileSync(path.join(m.path, 'stamp'), 'before the reboot\n');
    const pool = await poolOf(home);
    const old = [await b.findLoop(files(home).data), await b.findLoop(files(home).metadata)];
    await reboot(home, pool);
    const squatters = [await attachAt(decoy('squat', 64 * MiB), old[0]!), await attachAt(decoy('squat', 64 * MiB), old[1]!)];

    const audit = await cli(home, 'verify', '--kernel', '--json');
    assert.is(audit.code, EXIT.OK, `verify --kernel after a reboot: ${audit.err}${audit.out}`);
    const dry = await cli(home, 'recover', '--dry-run');
    assert.is(dry.code, EXIT.OK, dry.err + dry.out);
    assert.match(dry.out, /would attach .*devicemapper\/data/);
    assert.match(dry.out, /verdict: complete/);
    assert.is(await b.info(pool), null, 'the dry run changed nothing');

    const r = await json(home, 'recover');
    assert.is(r.plan.verdict, 'complete');
    assert.ok(r.devices.some((n: string) => /journaled: the pool's devices are now/.test(n)), JSON.stringify(r.devices));
    assert.equal(await tableDevices(pool), await fileNumbers(home), 'the pool is on its own files, not on the decoys at the old numbers');
    assert.is(readFileSync(path.join(m.path, 'stamp'), 'utf8'), 'before the reboot\n', 'd1 re-mounted with its data');
    const again = await json(home, 'verify', '--kernel');
    assert.equal(again.kernel.steps, []);
    assert.is(again.kernel.verdict, 'in-sync');
    const attached = (await dump(home)).filter((x) => x.type === 'PoolDevicesAttached');
    assert.is(attached.length, 1);
    assert.equal([attached[0]!.body.dataFile, attached[0]!.body.metadataFile], [files(home).data, files(home).metadata]);
    for (const s of squatters) await b.detachLoop(s);
  });

  test('two homes whose loop numbers swap after a reboot: each pool is assembled on its own files only', async () => {
    const A = path.join(top, 'home-a');
    const B = path.join(top, 'home-b');
    await json(A, 'init', ...SMALL);
    await json(B, 'init', ...SMALL);
    for (const [h, id] of [[A, 'a1'], [B, 'b1']] as const) {
      await json(h, 'create', id);
      const m = await json(h, 'mount', id);
      writeFileSync(path.join(m.path, 'owner'), `${h}\n`);
    }
    const poolA = await poolOf(A);
    const poolB = await poolOf(B);
    const oldA = await fileNumbers(A);
    await reboot(A, poolA);
    await reboot(B, poolB);
    // B's files come back first, on the loop devices A had; A's files are not attached at all.
    const loopsA = (await dump(A)).filter((x) => x.type === 'PoolInitialised').map((x) => [x.body.dataDevice as string, x.body.metadataDevice as string])[0]!;
    await attachAt(files(B).data, loopsA[0]!);
    await attachAt(files(B).metadata, loopsA[1]!);
    assert.equal(await fileNumbers(B), oldA, "B's files sit on A's journaled loop devices");

    const ra = await json(A, 'recover');
    assert.is(ra.plan.verdict, 'complete');
    assert.equal(await tableDevices(poolA), await fileNumbers(A));
    assert.is(readFileSync(path.join(A, 'mnt', 'a1', 'owner'), 'utf8'), `${A}\n`);
    const rb = await json(B, 'recover');
    assert.is(rb.plan.verdict, 'complete');
    assert.equal(await tableDevices(poolB), await fileNumbers(B));
    assert.is(readFileSync(path.join(B, 'mnt', 'b1', 'owner'), 'utf8'), `${B}\n`);
    for (const h of [A, B]) assert.equal((await json(h, 'verify', '--kernel')).kernel.steps, []);
  });

  test('a block-device pool whose devices come back swapped is refused, both identities named, nothing written', async () => {
    const home = path.join(top, 'blockdev');
    const dataFile = decoy('bd-data', 256 * MiB);
    const metaFile = decoy('bd-meta', 16 * MiB);
    const data = await b.attachLoop(dataFile);
    const meta = await b.attachLoop(metaFile);
    await json(home, 'init', '--opt', `dm.datadev=${data}`, '--opt', `dm.metadatadev=${meta}`, '--opt', 'dm.basesize=32M', '--opt', 'dm.fs=ext4');
    const pool = await poolOf(home);
    await json(home, 'create', 'x1');
    await reboot(home, pool);
    for (const n of (await b.listDevices()).map((d) => d.name).filter((x) => x.startsWith(prefixOf(pool)))) await b.remove(n);
    await b.detachLoop(data);
    await b.detachLoop(meta);
    // A smaller foreign disk comes up where the data device was; the metadata device is where it was.
    const foreign = await attachAt(decoy('bd-foreign', 64 * MiB), data);
    const meta2 = await attachAt(metaFile, meta);
    const before = readFileSync(metaFile);
    const r = await cli(home, 'recover');
    assert.is(r.code, EXIT.DRIFT, r.err + r.out);
    assert.match(r.out, new RegExp(`refused: .*${data}`));
    assert.match(r.out, /no repair is offered/);
    assert.is(await b.info(pool), null, 'no pool was assembled');
    assert.ok(readFileSync(metaFile).equals(before), 'the metadata device is untouched');
    const rr = await cli(home, 'recover', '--repair');
    assert.is(rr.code, EXIT.DRIFT, 'a refusal has no repair');
    assert.is(await b.info(pool), null);
    await b.detachLoop(foreign);
    await b.detachLoop(meta2);
  });

  test('a pool grown behind the journal\'s back is drift with a repair that adopts the size; after a reboot it does not brick the start; resize grows it', async () => {
    const home = path.join(top, 'grown');
    await json(home, 'init', ...SMALL);
    await json(home, 'create', 'g1');
    const pool = await poolOf(home);
    const f = files(home);
    const grow = async (bytes: number) => {
      truncateSync(f.data, bytes);
      const loop = (await b.findLoop(f.data))!;
      await b.resizeLoop(loop);
      const t = await b.poolTable(pool);
      await b.load(pool, [thinPoolTable({ metadataDevice: t.metadataDevice, dataDevice: t.dataDevice, lengthSectors: bytes / 512, dataBlockSectors: t.dataBlockSectors, lowWaterMarkBlocks: t.lowWaterMarkBlocks })]);
      await b.suspend(pool);
      await b.resume(pool);
    };
    await grow(384 * MiB);
    const v = await cli(home, 'verify', '--kernel');
    assert.is(v.code, EXIT.DRIFT, v.out);
    assert.match(v.out, /data grew outside the journal: the kernel has 384 MiB/);
    const rep = await cli(home, 'recover', '--repair');
    assert.is(rep.code, EXIT.OK, rep.err + rep.out);
    assert.not.match(rep.out, /nothing was changed/);
    assert.match(rep.out, /repair applied/);
    assert.is((await json(home, 'status')).data.total, 384 * MiB);
    const recs = await dump(home);
    const began = recs.findIndex((x) => x.type === 'RepairBegan');
    assert.ok(began >= 0, 'the repair is journaled');
    assert.equal(recs.slice(began).map((x) => x.type).slice(0, 5), ['RepairBegan', 'TransactionBegan', 'PoolResized', 'TransactionCommitted', 'RepairCompleted']);
    assert.is(recs[began]!.actor, 'thinjournal-cli');
    assert.match(String(recs[began]!.reason), /operator-confirmed/);

    // Grown again, then a reboot: the old table would be refused by the kernel; recovery says why instead.
    await grow(448 * MiB);
    await reboot(home, pool);
    const r = await cli(home, 'recover');
    assert.is(r.code, EXIT.DRIFT, r.err + r.out);
    assert.match(r.out, /data grew outside the journal/);
    const st = await cli(home, 'status');
    assert.is(st.code, EXIT.DRIFT, `a device command refuses with the drift, exit 3: ${st.err}`);
    const fixed = await cli(home, 'recover', '--repair');
    assert.is(fixed.code, EXIT.OK, fixed.err + fixed.out);
    assert.is((await json(home, 'status')).data.total, 448 * MiB);
    await json(home, 'create', 'g2');
    const rs = await json(home, 'resize', '--size', '512M');
    assert.is(rs.dataTotal, 512 * MiB);
    assert.equal((await json(home, 'verify', '--kernel')).kernel.steps, []);
  });

  test('sabotage: a table replaced by error, a suspended pool, a stray device under the prefix — each its own drift line and a journaled repair', async () => {
    const home = path.join(top, 'sabotage');
    await json(home, 'init', ...SMALL);
    await json(home, 'create', 's1');
    const m = await json(home, 'mount', 's1');
    writeDurably(path.join(m.path, 'stamp'), 'kept\n');
    const pool = await poolOf(home);
    const name = `${prefixOf(pool)}-s1`;
    const sectors = (await b.table(name))[0]!.length;

    // As `dmsetup remove --force` leaves a device that is open: its table replaced by error.
    await b.load(name, [{ start: 0, length: sectors, type: 'error', params: '' }]);
    await b.suspend(name);
    await b.resume(name);
    const v = await cli(home, 'verify', '--kernel');
    assert.is(v.code, EXIT.DRIFT, v.out);
    assert.match(v.out, new RegExp(`${name} .*has a table of type error`));
    const busy = await cli(home, 'recover', '--repair');
    assert.is(busy.code, EXIT.DRIFT);
    assert.match(busy.out, /refused: .*still mounted/);
    await b.umount(m.path);
    const fixed = await cli(home, 'recover', '--repair');
    assert.is(fixed.code, EXIT.OK, fixed.err + fixed.out);
    assert.is((await b.table(name))[0]!.type, 'thin');
    assert.is(readFileSync(path.join(m.path, 'stamp'), 'utf8'), 'kept\n', 're-activated and re-mounted');

    // A suspended pool: every thin device's I/O waits; recover says so and resumes it.
    await b.suspend(pool);
    const sv = await cli(home, 'verify', '--kernel');
    assert.is(sv.code, EXIT.DRIFT);
    assert.match(sv.out, /is suspended/);
    assert.is((await cli(home, 'recover', '--repair')).code, EXIT.OK);
    assert.is((await b.info(pool))!.suspended, false);

    // A dm device under our prefix that the journal never made.
    const stray = `${prefixOf(pool)}-stray`;
    await b.create(stray, [{ start: 0, length: 2048, type: 'zero', params: '' }]);
    const st = await cli(home, 'verify', '--kernel');
    assert.is(st.code, EXIT.DRIFT);
    assert.match(st.out, new RegExp(`${stray} carries the journal's prefix`));
    assert.is((await cli(home, 'recover', '--repair')).code, EXIT.OK);
    assert.is(await b.info(stray), null);

    const repairs = (await dump(home)).filter((x) => x.type.startsWith('Repair'));
    assert.equal(repairs.map((x) => x.type), ['RepairBegan', 'RepairCompleted', 'RepairBegan', 'RepairCompleted', 'RepairBegan', 'RepairCompleted']);
    assert.ok(repairs.every((x) => x.actor === 'thinjournal-cli'));
    assert.match(JSON.stringify(repairs[0]!.body.steps), new RegExp(`remove dm device ${name}`));
    assert.match(JSON.stringify(repairs[4]!.body.steps), new RegExp(`remove dm device ${stray}`));
    assert.equal((await json(home, 'verify', '--kernel')).kernel.steps, []);
  });

  test.after(async () => {
    for (const h of ['reboot', 'home-a', 'home-b', 'blockdev', 'grown', 'sabotage']) await cli(path.join(top, h), 'shutdown').catch(() => {});
    for (const l of fillers) await b.detachLoop(l).catch(() => {});
    await removeKernelLeftovers(b, top, (n) => n.startsWith('thinjournal-'));
    rmSync(top, { recursive: true, force: true });
  });
}
test.run();
