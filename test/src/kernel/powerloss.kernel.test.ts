/**
 * Power loss at flush points, on a real kernel. Everything that must survive a power cut together — the thin
 * pool's metadata device, its data device, and the ext4 filesystem holding the thinjournal home (the
 * journal) — are dm-linear slices of ONE `log-writes` device, so that one log orders all their writes. A
 * workload of device operations runs through the CLI (in this process, on the kernel backend), with a
 * mark in the log before each operation and after its acknowledgement. Then the machine "loses power" (the
 * devices are torn down; nothing written after the `end` mark is looked at), and for each FLUSH/FUA entry
 * of the log (all of them, or a deterministic sample) the devices are rebuilt as they were right after it:
 * the log is replayed onto a scratch image (log-writes.ts), a non-persistent dm snapshot of it takes every
 * write recovery makes (so the replay can move on), and linear slices with the same names are laid on the
 * snapshot. On the rebuilt devices:
 *   - `thin_check` passes on the metadata as the power cut left it (before thinjournal touches it) and
 *     again after recovery, offline; errors thin_check classes as non-fatal (leaked metadata blocks) are
 *     printed with the point, not failures;
 *   - the home's ext4 mounts; `thinjournal verify` passes on the journal as the cut left it;
 *   - `thinjournal recover` succeeds; `verify --kernel` then says in-sync and `recover --dry-run` plans
 *     nothing (journal and pool agree: thin ids, transaction id);
 *   - `thin_dump`'s transaction id and device ids (an oracle outside thinjournal) equal the journal's
 *     committed transaction id and live devices;
 *   - every operation acknowledged before the point is present: the journal's device set is the one the
 *     acknowledged operations give, or that plus the one operation in flight; a file written and fsynced
 *     into a mounted device before the point reads back after recovery re-mounted it.
 * A point before `init` was acknowledged may have no journal or no pool yet: then nothing was promised, and
 * only "recovery starts cleanly or there is nothing to recover" is required.
 *
 * THINJOURNAL_POWERLOSS_POINTS: how many flush points to try (default 12, the CI sample, which keeps this file
 * under about 6 minutes in the dmvm guest: a point costs 3–20 s there, the workload 30–120 s; `all` for every
 * one). The sample is deterministic: up to half of it first flush points after acknowledgements, the rest
 * evenly spaced. THINJOURNAL_POWERLOSS_KEEP=DIR keeps the journal of each failing point, as the cut left it.
 * test/POWERLOSS.md says how to run the full set.
 */
import { execFile } from 'node:child_process';
import { closeSync, cpSync, fsyncSync, mkdirSync, readdirSync, statSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync, writeSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KernelBackend, parseMountInfo } from '../../../packages/dm/dist/src/index.js';
import { EXIT } from '../../../packages/cli/dist/src/index.js';
import { cliOn, kernelUnavailable } from './kernel-harness.js';
import { LOG_MARK, flagNames, isFlushPoint, openReplay, type LogEntry } from './log-writes.js';

const run = promisify(execFile);
const MiB = 2 ** 20;
const SECTOR = 512;
const META_MIB = 16, DATA_MIB = 160, HOME_MIB = 64;
const TOTAL_SECTORS = ((META_MIB + DATA_MIB + HOME_MIB) * MiB) / SECTOR;
const POINTS = process.env.THINJOURNAL_POWERLOSS_POINTS ?? '12';
/** Where the journal of a point that fails is kept, as the power cut left it (for a reproduction off the kernel). */
const KEEP = process.env.THINJOURNAL_POWERLOSS_KEEP;

/**
 * thin_check on a metadata device. Errors thin-provisioning-tools classes as non-fatal (space map reference
 * counts above the trees' references: leaked metadata blocks, which waste space but lose no mapping and which
 * the kernel accepts) are noted, not failures; any other error throws with thin_check's own words.
 */
async function thinCheck(meta: string, when: string, notes: string[]): Promise<void> {
  const words = (err: unknown): string => {
    const e = err as { stdout?: string; stderr?: string; message?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().replace(/\n+/g, ' / ') || String(e.message ?? err);
  };
  let strict: string;
  try { await run('thin_check', [meta]); return; } catch (err) { strict = words(err); }
  try { await run('thin_check', ['--ignore-non-fatal-errors', meta]); } catch (err) { throw new Error(words(err)); }
  notes.push(`thin_check ${when}: non-fatal errors only (${strict.replace(/^.*?checking space map counts \/ /, '')})`);
}

async function tool(name: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${name}`]).then(() => true, () => false);
}

let why = await kernelUnavailable();
if (!why) {
  const missing = [];
  for (const t of ['thin_check', 'thin_dump', 'mkfs.ext4']) if (!(await tool(t))) missing.push(t);
  if (missing.length) why = `missing ${missing.join(', ')} (apt-get install thin-provisioning-tools e2fsprogs)`;
}
if (!why && POINTS !== 'all' && !(Number.isInteger(Number(POINTS)) && Number(POINTS) > 0)) why = `THINJOURNAL_POWERLOSS_POINTS=${POINTS}: a whole number > 0, or all`;

const errText = (err: unknown): string => {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr || e.message || String(err)).trim().split('\n').slice(-3).join(' / ');
};

/** thin_dump's superblock transaction id and device ids, read from its XML without thinjournal's parser. */
function thinDumpFacts(xml: string): { transactionId: number; ids: number[] } {
  const sb = /<superblock\b[^>]*\btransaction="(\d+)"/.exec(xml);
  if (!sb) throw new Error(`thin_dump: no superblock transaction in ${xml.slice(0, 200)}`);
  const ids = [...xml.matchAll(/<device\b[^>]*\bdev_id="(\d+)"/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  return { transactionId: Number(sb[1]), ids };
}

/** The workload: each step is acknowledged when its promise returns; `devices` is the set it leaves. */
interface Step { name: string; run: () => Promise<void>; devices: (before: Set<string>) => Set<string> }
const add = (...ids: string[]) => (s: Set<string>) => new Set([...s, ...ids]);
const del = (...ids: string[]) => (s: Set<string>) => new Set([...s].filter((x) => !ids.includes(x)));
const same = (s: Set<string>) => new Set(s);
const setKey = (s: Set<string>) => [...s].sort().join(',');

/** `n` elements of `arr`, evenly spaced, first and last included. */
const spread = (arr: number[], n: number): number[] =>
  n <= 0 ? [] : n >= arr.length ? [...arr] : Array.from({ length: n }, (_, k) => arr[Math.round((k * (arr.length - 1)) / Math.max(1, n - 1))]!);

/**
 * Which of the flush points `pool` to try, deterministically: all of them when `want` covers them; else up
 * to half from `must` (the first point after each acknowledgement, evenly spaced over the steps), the rest
 * evenly spaced over all points.
 */
function samplePoints(pool: number[], must: number[], want: number): number[] {
  if (want >= pool.length) return [...pool];
  const chosen = new Set(spread(must.filter((m) => pool.includes(m)), Math.ceil(want / 2)));
  for (const x of spread(pool, want - chosen.size)) chosen.add(x);
  for (let i = 0; chosen.size < want && i < pool.length; i++) chosen.add(pool[i]!);
  return [...chosen].sort((a, b) => a - b);
}

if (why) {
  console.log(`kernel power-loss test skipped: ${why}`);
  test.skip('power loss at flush points: rebuild from the log-writes log, recover, check', () => {});
} else {
  test(`power loss at flush points (${POINTS === 'all' ? 'every one' : `a sample of ${POINTS}`}): rebuilt from the log-writes log, thin_check, verify, recover, nothing acknowledged lost`, async () => {
    const t0 = Date.now();
    const b = new KernelBackend();
    const top = mkdtempSync(path.join(os.tmpdir(), 'tjpl-'));
    const tag = `tjpl${process.pid}`;
    const names = { lw: `${tag}-lw`, meta: `${tag}-meta`, data: `${tag}-data`, home: `${tag}-home`, snap: `${tag}-snap` };
    const dev = (n: string) => `/dev/mapper/${n}`;
    const homeMnt = path.join(top, 'home');
    const home = path.join(homeMnt, 'tj');
    const before = new Set((await b.listDevices()).map((d) => d.name));
    const loops: string[] = [];
    // The scaffolding (log-writes, linear slices, snapshot) is made with the backend's ioctls, as `dmsetup
    // create/remove/message` would, without a process per call (one costs ≈ 1.5 s in the guest).
    const mark = (m: string) => b.message(names.lw, `mark ${m}`, 0);
    const dmCreate = (n: string, type: string, length: number, params: string) => b.create(n, [{ start: 0, length, type, params }]);

    /** Linear slices meta | data | home of `under`, named as the pool and the home expect them. */
    const slice = async (under: string) => {
      let at = 0;
      for (const [n, mib] of [[names.meta, META_MIB], [names.data, DATA_MIB], [names.home, HOME_MIB]] as const) {
        const len = (mib * MiB) / SECTOR;
        await dmCreate(n, 'linear', len, `${under} ${at}`);
        at += len;
      }
    };
    const umountUnder = async (dir: string) => {
      const ms = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => m.mountPoint).filter((p) => p === dir || p.startsWith(dir + '/'));
      for (const m of ms.sort((x, y) => y.length - x.length)) await b.umount(m);
    };
    /** Every dm device thinjournal made (not there before this test, not one of ours), thin devices first. */
    const removeThinjournalDevices = async () => {
      const ours = new Set(Object.values(names));
      for (let pass = 0; pass < 6; pass++) {
        const left = (await b.listDevices()).map((d) => d.name).filter((n) => !before.has(n) && !ours.has(n));
        if (!left.length) return;
        for (const n of left.sort((x, y) => Number(x.endsWith('-pool')) - Number(y.endsWith('-pool')))) await b.remove(n).catch(() => {});
      }
      throw new Error(`devices left: ${(await b.listDevices()).map((d) => d.name).filter((n) => !before.has(n) && !ours.has(n))}`);
    };
    const removeOurs = async (...ns: string[]) => {
      for (const n of ns) if (await b.info(n)) await b.remove(n);
    };

    try {
      // ---- the devices, all under one log-writes device, and the home's filesystem
      const dataImg = path.join(top, 'lw-data'), logImg = path.join(top, 'lw-log');
      for (const [f, bytes] of [[dataImg, TOTAL_SECTORS * SECTOR], [logImg, 1024 * MiB]] as const) {
        writeFileSync(f, '');
        truncateSync(f, bytes);
      }
      const dataLoop = await b.attachLoop(dataImg);
      loops.push(dataLoop);
      const logLoop = await b.attachLoop(logImg);
      loops.push(logLoop);
      await dmCreate(names.lw, 'log-writes', TOTAL_SECTORS, `${dataLoop} ${logLoop}`);
      await slice(dev(names.lw));
      await run('mkfs.ext4', ['-q', '-F', dev(names.home)]);
      mkdirSync(homeMnt);
      await b.mount(dev(names.home), homeMnt, { fsType: 'ext4' });
      await run('sync');
      await mark('home-ready');

      // ---- the workload, each step between a begin and an ack mark
      const cli = cliOn(b, home);
      const fileText = 'written and fsynced before its ack\n';
      let a1Mount = '';
      const steps: Step[] = [
        { name: 'init', run: async () => void (await cli.ok('init', '--opt', `dm.datadev=${dev(names.data)}`, '--opt', `dm.metadatadev=${dev(names.meta)}`, '--opt', 'dm.basesize=32M', '--opt', 'dm.fs=ext4')), devices: add('') },
        { name: 'create a1', run: async () => void (await cli.ok('create', 'a1')), devices: add('a1') },
        { name: 'create a2', run: async () => void (await cli.ok('create', 'a2')), devices: add('a2') },
        { name: 'snapshot s1 of a1', run: async () => void (await cli.ok('snapshot', 's1', '--from', 'a1')), devices: add('s1') },
        { name: 'mount a1', run: async () => { a1Mount = (await cli.ok('mount', 'a1')).path; }, devices: same },
        {
          name: 'write a file in a1', devices: same, run: async () => {
            const fd = openSync(path.join(a1Mount, 'kept'), 'w');
            try { writeSync(fd, fileText); fsyncSync(fd); } finally { closeSync(fd); }
          },
        },
        { name: 'rm a2', run: async () => void (await cli.ok('rm', 'a2', '--sync')), devices: del('a2') },
        { name: 'create a3 from s1', run: async () => void (await cli.ok('create', 'a3', '--parent', 's1')), devices: add('a3') },
        { name: 'snapshot s2 of a3', run: async () => void (await cli.ok('snapshot', 's2', '--from', 'a3')), devices: add('s2') },
        { name: 'rm s2', run: async () => void (await cli.ok('rm', 's2', '--sync')), devices: del('s2') },
        { name: 'create a4', run: async () => void (await cli.ok('create', 'a4')), devices: add('a4') },
        { name: 'rm a3', run: async () => void (await cli.ok('rm', 'a3', '--sync')), devices: del('a3') },
      ];
      const sets: Set<string>[] = [new Set()];
      for (const [i, s] of steps.entries()) {
        await mark(`begin-${i}`);
        await s.run();
        await mark(`ack-${i}`);
        sets.push(s.devices(sets[i]!));
      }
      await mark('end');
      const tWork = Date.now();

      // ---- the power cut: nothing after the end mark is looked at; the kernel forgets everything
      await umountUnder(homeMnt);
      await removeThinjournalDevices();
      await removeOurs(names.meta, names.data, names.home, names.lw);
      for (const l of loops.splice(0)) await b.detachLoop(l);

      // ---- the points
      const replayImg = path.join(top, 'replay'), cowImg = path.join(top, 'cow');
      writeFileSync(replayImg, '');
      truncateSync(replayImg, TOTAL_SECTORS * SECTOR);
      writeFileSync(cowImg, '');
      truncateSync(cowImg, 256 * MiB);
      const rp = openReplay(logImg, replayImg);
      const entries = rp.log.entries;
      const markAt = new Map<string, number>();
      for (const e of entries) if (e.flags & LOG_MARK && e.mark !== undefined) markAt.set(e.mark, e.index);
      const ready = markAt.get('home-ready'), end = markAt.get('end');
      assert.ok(ready !== undefined && end !== undefined, `marks in the log: ${[...markAt.keys()].join(', ')}`);
      for (let i = 0; i < steps.length; i++) assert.ok(markAt.has(`begin-${i}`) && markAt.has(`ack-${i}`), `marks of step ${i}`);
      const flushes = entries.filter((e) => e.index > ready! && e.index < end! && isFlushPoint(e)).map((e) => e.index);
      const afterAcks = steps.map((_, i) => flushes.find((f) => f > markAt.get(`ack-${i}`)!)).filter((f): f is number => f !== undefined);
      const points = samplePoints(flushes, afterAcks, POINTS === 'all' ? Infinity : Number(POINTS));
      console.log(`power loss: workload ${((tWork - t0) / 1000).toFixed(1)} s; log ${entries.length} entries, ${flushes.length} FLUSH/FUA points in the workload; trying ${points.length}`);

      const replayLoop = await b.attachLoop(replayImg);
      loops.push(replayLoop);
      const cowLoop = await b.attachLoop(cowImg);
      loops.push(cowLoop);
      const acksBefore = (p: number) => steps.filter((_, i) => markAt.get(`ack-${i}`)! < p).length;
      const inFlight = (p: number) => { const k = acksBefore(p); return k < steps.length && markAt.get(`begin-${k}`)! < p ? k : null; };

      const tally = { tried: 0, recovered: 0, torn: 0, nothingPromised: 0, lost: 0, failed: 0 };
      const problems: string[] = [];
      for (const p of points) {
        const tp = Date.now();
        const e: LogEntry = entries[p]!;
        const acked = acksBefore(p);
        const flying = inFlight(p);
        const where = `point ${p} (${flagNames(e.flags)}; ${acked} acked${flying !== null ? `, "${steps[flying]!.name}" in flight` : ''})`;
        const bad: string[] = [];
        const lost: string[] = [];
        const phases: string[] = [];
        let tPhase = Date.now();
        const phase = (what: string) => { const now = Date.now(); phases.push(`${what} ${((now - tPhase) / 1000).toFixed(1)}`); tPhase = now; };
        const notes: string[] = [];
        let torn = false, nothing = false;
        tally.tried++;
        rp.replayer.replayThrough(p);
        phase('replay');
        await dmCreate(names.snap, 'snapshot', TOTAL_SECTORS, `${replayLoop} ${cowLoop} N 8`);
        await slice(dev(names.snap));
        phase('devices');
        try {
          // the metadata as the power cut left it
          const head = Buffer.alloc(4096);
          const fd = openSync(dev(names.meta), 'r');
          try { readSync(fd, head, 0, 4096, 0); } finally { closeSync(fd); }
          const poolMade = head.some((x) => x !== 0);
          if (poolMade) {
            await thinCheck(dev(names.meta), 'before recovery', notes).catch((err) => {
              bad.push(`thin_check before recovery: ${errText(err)}`);
              if (KEEP) {
                mkdirSync(KEEP, { recursive: true });
                writeFileSync(path.join(KEEP, `point-${p}.meta`), readFileSync(dev(names.meta)));
              }
            });
          }
          else if (acked >= 1) lost.push('the pool\'s metadata is empty although init was acknowledged');
          phase('thin_check');

          await b.mount(dev(names.home), homeMnt, { fsType: 'ext4' }).catch((err) => bad.push(`the home's ext4 does not mount: ${errText(err)}`));
          phase('mount');
          const journalThere = existsSync(path.join(home, 'journal'));
          if (!bad.length && !journalThere) {
            if (acked >= 1) lost.push('no journal although init was acknowledged');
            else nothing = true;
          }
          const pristine = path.join(top, 'pristine');
          rmSync(pristine, { recursive: true, force: true });
          if (journalThere) cpSync(path.join(home, 'journal'), pristine, { recursive: true });
          if (!bad.length && journalThere) {
            const v = await cli.run('verify', '--json');
            if (v.code === EXIT.CORRUPT && /torn/i.test(v.out + v.err)) torn = true;
            else if (v.code !== EXIT.OK) {
              // Before init was answered, LevelDB may be half-made (no CURRENT, an empty manifest): refused,
              // and nothing was promised. Counted and shown, not a failure.
              if (acked >= 1) bad.push(`verify: exit ${v.code}: ${(v.err + v.out).trim().slice(0, 300)}`);
              else { nothing = true; notes.push(`verify refuses the half-made journal: exit ${v.code}: ${(v.err + v.out).trim().slice(0, 200)}`); }
            }
            phase('verify');
            const r = nothing ? null : await cli.run('recover', '--json', ...(torn ? ['--repair-torn-tail'] : []));
            phase('recover');
            if (r === null) {
              // nothing to recover: see above
            } else if (r.code !== EXIT.OK) {
              if (acked >= 1) bad.push(`recover: exit ${r.code}: ${(r.err + r.out).trim().slice(0, 400)}`);
              else { nothing = true; notes.push(`recover refuses the half-made home: exit ${r.code}: ${(r.err + r.out).trim().slice(0, 200)}`); }
            } else {
              const vk = await cli.run('verify', '--kernel', '--json');
              if (vk.code !== EXIT.OK) bad.push(`verify --kernel after recovery: exit ${vk.code}: ${(vk.err + vk.out).trim().slice(0, 300)}`);
              else if (JSON.parse(vk.out.trim().split('\n').pop()!).kernel?.verdict !== 'in-sync') bad.push(`verify --kernel: ${vk.out.trim().slice(0, 200)}`);
              phase('verify-kernel');
              const dry = await cli.run('recover', '--dry-run', '--json');
              phase('dry-run');
              if (dry.code !== EXIT.OK || JSON.parse(dry.out.trim().split('\n').pop()!).plan.steps.length !== 0) bad.push(`a second recovery plans something: exit ${dry.code}: ${dry.out.trim().slice(0, 300)}`);
              const ls = await cli.ok('ls') as { hash: string; deviceId: number; mounts: string[] }[];
              const have = new Set(ls.map((d) => d.hash));
              const allowed = [sets[acked]!, ...(flying !== null ? [sets[flying + 1]!] : [])];
              if (acked >= 1 && !allowed.some((s) => setKey(s) === setKey(have))) {
                lost.push(`devices [${setKey(have)}], acknowledged [${setKey(sets[acked]!)}]${flying !== null ? ` or [${setKey(sets[flying + 1]!)}]` : ''}`);
              }
              const a1 = ls.find((d) => d.hash === 'a1');
              if (acked > 5 && a1 && a1.mounts.length) {
                const f = path.join(a1.mounts[0]!, 'kept');
                const got = existsSync(f) ? readFileSync(f, 'utf8') : null;
                if (got !== fileText) lost.push(`a1's fsynced file: ${got === null ? 'missing' : JSON.stringify(got)}`);
              } else if (acked > 5 && !a1?.mounts.length) lost.push('a1 is not mounted after recovery although its mount was acknowledged');
              phase('ls+file');
              const recs = (await cli.run('dump', '--json')).out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; txId: number });
              const committed = Math.max(0, ...recs.filter((x) => x.type === 'TransactionCommitted').map((x) => x.txId));
              const ids = ls.map((d) => d.deviceId).sort((x, y) => x - y);
              // the pool offline, as the next boot finds it: thin_check, and thin_dump against the journal
              phase('dump');
              await umountUnder(homeMnt);
              await removeThinjournalDevices();
              phase('teardown');
              await thinCheck(dev(names.meta), 'after recovery', notes).catch((err) => bad.push(`thin_check after recovery: ${errText(err)}`));
              const facts = thinDumpFacts((await run('thin_dump', ['--skip-mappings', dev(names.meta)], { maxBuffer: 64 * MiB })).stdout);
              if (facts.transactionId !== committed) bad.push(`thin_dump transaction ${facts.transactionId} ≠ the journal's committed ${committed}`);
              if (facts.ids.join(',') !== ids.join(',')) bad.push(`thin_dump ids [${facts.ids}] ≠ the journal's [${ids}]`);
              phase('thin_check+dump');
            }
          }
        } catch (err) {
          bad.push(`unexpected: ${err instanceof Error ? err.stack : String(err)}`);
        } finally {
          await umountUnder(homeMnt).catch((err) => bad.push(`umount: ${errText(err)}`));
          await removeThinjournalDevices().catch((err) => bad.push(`teardown: ${errText(err)}`));
          await removeOurs(names.meta, names.data, names.home, names.snap);
          phase('cleanup');
        }
        if ((lost.length || bad.length) && existsSync(path.join(top, 'pristine'))) {
          const files = readdirSync(path.join(top, 'pristine')).sort().map((f) => `${f}:${statSync(path.join(top, 'pristine', f)).size}`);
          bad.push(`the journal as the cut left it: ${files.join(' ')}`);
          if (KEEP) cpSync(path.join(top, 'pristine'), path.join(KEEP, `point-${p}`), { recursive: true });
        }
        if (lost.length) tally.lost++;
        else if (bad.length) tally.failed++;
        else {
          tally.recovered++;
          if (torn) tally.torn++;
          if (nothing) tally.nothingPromised++;
        }
        const verdict = lost.length ? 'LOST' : bad.length ? 'FAILED' : nothing ? 'nothing promised' : torn ? 'recovered (torn tail repaired)' : 'recovered';
        console.log(`  ${where}: ${verdict} [${((Date.now() - tp) / 1000).toFixed(1)} s: ${phases.join(', ')}]`);
        for (const x of notes) console.log(`      (${x})`);
        for (const x of [...lost, ...bad]) {
          console.log(`      ${x}`);
          problems.push(`${where}: ${x}`);
        }
      }
      rp.close();
      console.log(`power loss: ${tally.tried} points tried, ${tally.recovered} recovered (${tally.nothingPromised} before init was acknowledged, ${tally.torn} with a torn journal tail repaired), ${tally.lost} with acknowledged operations lost, ${tally.failed} failed otherwise; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
      assert.is(tally.tried, points.length);
      assert.equal(problems, [], problems.join('\n'));
    } finally {
      await umountUnder(top).catch(() => {});
      await removeThinjournalDevices().catch(() => {});
      await removeOurs(names.meta, names.data, names.home, names.snap, names.lw).catch(() => {});
      for (const l of loops) await b.detachLoop(l).catch(() => {});
      rmSync(top, { recursive: true, force: true });
    }
  });
}

test.run();
