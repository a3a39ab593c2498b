/**
 * The snapshotter under containerd, SIGKILLed: Debian's containerd (a private instance, kit.startContainerd)
 * with thinjournal's daemon as its `thinjournal` proxy plugin, and the daemon killed at random moments
 * (a seeded PRNG: the seed is printed, THINJOURNAL_SNAPSHOTTER_CRASH_SEED replays a run) during
 *   - `ctr images import` of multi-layer images (mkimage.py's busybox layer + layers of addlayers.py: images
 *     share some layers and differ in others, so unpacking makes chains of committed snapshots),
 *   - `ctr images rm --sync` (containerd's collector then calls the daemon's Walk, Remove and Cleanup),
 *   - `ctr snapshots prepare` (an active snapshot on an image's top layer, as a container's rootfs) and
 *     `ctr snapshots rm` followed by a synchronous collection,
 * THINJOURNAL_SNAPSHOTTER_KILLS times (default 10). The kill lands half the time inside a call of the service
 * (after the daemon announced the k-th call of the operation, k random) and otherwise after a random time.
 * After each kill the next daemon starts on the same home (its start recovers; it was spawned ahead and waits
 * with its modules loaded, so a restart costs the recovery, not a node start-up), and:
 *   - containerd works on: a call that reaches the daemon (Stat through containerd's metadata) answers, then a
 *     new Prepare; how long containerd's proxy client takes to re-dial is measured and printed;
 *   - nothing acknowledged is lost: every snapshot that an acknowledged ctr call made (and no acknowledged
 *     call removed) is listed, with its kind and parent, by containerd and by `thinjournal ls` on the home;
 *   - the pool's thin ids (thin_ls/thin_dump on a metadata snapshot of the live pool) equal the journal's
 *     devices, thin_check passes, and the pool's used data blocks are exactly the blocks its devices map
 *     (no leaked device, no leaked space).
 * At the end everything is removed and collected: containerd and the daemon list the same snapshots (only
 * the anchor image's), the devices are the journal's, the daemon stops on SIGTERM with exit 0 and
 * `thinjournal verify --kernel` passes.
 *
 * Its guest time is bounded by THINJOURNAL_SNAPSHOTTER_CRASH_LIMIT_S (default 1200 s): past it the test stops
 * and fails, saying where it was, rather than running into the runner's limit for the whole guest.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KernelBackend } from '../../../packages/dm/dist/src/index.js';
import { devicePrefixFor } from '../../../packages/driver/dist/src/index.js';
import { cliOn, kernelUnavailable, removeKernelLeftovers } from './kernel-harness.js';
import { prng } from './kill-child.js';
import { discoverModules, stageModules } from './stage.js';

const kit: any = await import(new URL('../../containerd/kit.mjs', import.meta.url).href);
const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '..', '..', '..');
const KILLS = Number(process.env.THINJOURNAL_SNAPSHOTTER_KILLS ?? 10);
const LIMIT_MS = Number(process.env.THINJOURNAL_SNAPSHOTTER_CRASH_LIMIT_S ?? 1200) * 1000;
const NS = 'tjcrash';
const SN = 'thinjournal';
const OPTS = (process.env.THINJOURNAL_CRASH_OPTS ?? 'dm.loopdatasize=1G,dm.loopmetadatasize=64M,dm.basesize=64M,dm.fs=ext4,dm.min_free_space=0%').split(',').filter(Boolean);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The images: a name and the words of the layers added above the busybox layer (shared prefixes share layers). */
const IMAGES: { name: string; words: string[] }[] = [
  { name: 'localhost/tjcrash/a:1', words: ['a'] },
  { name: 'localhost/tjcrash/ab:1', words: ['a', 'b'] },
  { name: 'localhost/tjcrash/c:1', words: ['c'] },
  { name: 'localhost/tjcrash/cde:1', words: ['c', 'd', 'e'] },
];
const ANCHOR = 'localhost/tjcrash/anchor:1';

type Ev = { ev: string; call?: string; n?: number; ok?: boolean; code?: number };

/** A daemon process and what it announced (snapshotter-crash-child.ts). */
class Daemon {
  readonly events: Ev[] = [];
  stderr = '';
  private waiters: (() => void)[] = [];
  constructor(readonly proc: ChildProcess) {
    let buf = '';
    proc.stdout!.on('data', (d) => {
      buf += String(d);
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try { this.events.push(JSON.parse(line) as Ev); } catch { this.stderr += line + '\n'; }
        this.wake();
      }
    });
    proc.stderr!.on('data', (d) => { this.stderr = (this.stderr + String(d)).slice(-20_000); });
    proc.on('exit', () => this.wake());
  }
  private wake(): void { for (const w of this.waiters.splice(0)) w(); }
  get alive(): boolean { return this.proc.exitCode === null && this.proc.signalCode === null; }
  /** The first event at index ≥ `from` matching `pred`; rejects on timeout or when the process exits first. */
  async waitFor(pred: (e: Ev, index: number) => boolean, ms: number, what: string, from = 0): Promise<Ev> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (let i = from; i < this.events.length; i++) if (pred(this.events[i]!, i)) return this.events[i]!;
      if (!this.alive) throw new Error(`daemon exited (${this.proc.exitCode ?? this.proc.signalCode}) before ${what}\n${this.stderr.slice(-4000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}\n${this.stderr.slice(-4000)}`);
      await new Promise<void>((r) => { const t = setTimeout(r, Math.min(left, 1000)); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }
  go(): void { this.proc.stdin!.write('go\n'); }
  async kill(): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await exited;
  }
}

/** `ctr snapshots ls` rows: KEY PARENT KIND. */
function snapshotRows(text: string): { key: string; parent: string; kind: string }[] {
  return text.trim().split('\n').slice(1).filter(Boolean).map((l) => {
    const f = l.trim().split(/\s+/);
    return f.length === 3 ? { key: f[0]!, parent: f[1]!, kind: f[2]! } : { key: f[0]!, parent: '', kind: f[f.length - 1]! };
  });
}

/** containerd's chain ids of a layer stack (diff ids bottom first): chain(i) = sha256(chain(i-1) + " " + diff(i)). */
function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : 'sha256:' + createHash('sha256').update(`${out[out.length - 1]} ${d}`).digest('hex'));
  return out;
}

/** The number of distinct data blocks the devices of a thin_dump (with mappings) map. */
function mappedDataBlocks(xml: string): number {
  const ranges: [number, number][] = [];
  for (const m of xml.matchAll(/<range_mapping\b[^>]*\bdata_begin="(\d+)"[^>]*\blength="(\d+)"/g)) ranges.push([Number(m[1]), Number(m[1]) + Number(m[2])]);
  for (const m of xml.matchAll(/<single_mapping\b[^>]*\bdata_block="(\d+)"/g)) ranges.push([Number(m[1]), Number(m[1]) + 1]);
  ranges.sort((a, b) => a[0] - b[0]);
  let n = 0, end = -1;
  for (const [s, e] of ranges) {
    if (e <= end) continue;
    n += e - Math.max(s, end);
    end = e;
  }
  return n;
}

const stripBackendKey = (k: string) => k.replace(/^[^/]+\/\d+\//, '');

let why = await kernelUnavailable();
if (!why) {
  const missing: string[] = kit.missingTools(['python3', 'thin_ls', 'thin_dump', 'thin_check']);
  const busybox = spawnSync('dpkg-query', ['-W', '-f=${Status}', 'busybox-static'], { encoding: 'utf8' }).stdout?.includes('install ok installed');
  if (!busybox) missing.push('busybox-static');
  if (missing.length) why = `missing ${missing.join(', ')} (node test/containerd/prepare.mjs installs them)`;
}
if (!why) {
  const svc = kit.thinjournalService();
  if (!svc.ok) why = svc.why;
}

if (why) {
  console.log(`snapshotter crash test skipped: ${why}`);
  test.skip('the snapshotter daemon SIGKILLed under containerd', () => {});
} else {
  test(`the snapshotter daemon SIGKILLed ${KILLS}× under containerd during imports and removals; restart, containerd works on, nothing acknowledged lost, thin ids = journal devices`, async () => {
    const seed = Number(process.env.THINJOURNAL_SNAPSHOTTER_CRASH_SEED ?? Date.now() % 2 ** 31);
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    console.log(`  snapshotter crash test: seed ${seed} (THINJOURNAL_SNAPSHOTTER_CRASH_SEED=${seed} replays it), ${KILLS} kills`);
    const t0 = Date.now();
    const deadline = t0 + LIMIT_MS;
    const withinLimit = (where: string) => {
      if (Date.now() > deadline) throw new Error(`over the file's limit of ${LIMIT_MS / 1000} s (THINJOURNAL_SNAPSHOTTER_CRASH_LIMIT_S) at ${where}`);
    };
    const b = new KernelBackend();
    const dir = kit.tmpDir('tjcrash-');
    const home = path.join(dir, 'home');
    const sock = path.join(dir, 'tj.sock');
    const daemons: Daemon[] = [];
    let ctd: any = null;
    try {
      // The daemons load their modules from a tmpfs mirror (the project is on 9p in the guest); the service's
      // .proto files are read at run time, not imported, so they are copied beside the mirrored dist.
      const childSrc = path.join(here, 'snapshotter-crash-child.js');
      const modules = await discoverModules(path.join(dir, 'scratch'), childSrc, ['--discover']);
      const staged = stageModules(path.join(dir, 'stage'), { projectRoot, files: modules });
      const proto = path.join(projectRoot, 'packages', 'snapshotter', 'proto');
      cpSync(proto, path.join(staged.root, proto), { recursive: true });
      const childJs = path.join(staged.root, childSrc);
      console.log(`  staged ${staged.files} files for the daemons in ${Date.now() - t0} ms`);
      const spawnDaemon = (): Daemon => {
        const d = new Daemon(spawn(process.execPath, [childJs, JSON.stringify({ home, socket: sock, opts: OPTS })], { stdio: ['pipe', 'pipe', 'pipe'] }));
        daemons.push(d);
        return d;
      };

      // Images: mkimage.py's one-layer image (the anchor, never removed: the collections' trigger) and, on it,
      // the images of IMAGES.
      const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
      const baseTar = path.join(dir, 'base.tar');
      const baseOut: string = await kit.sh(py, [path.join(kit.KIT, 'mkimage.py'), baseTar, ANCHOR], { env: { ...process.env, BUSYBOX: '/bin/busybox' } });
      const baseLayer = /layer (sha256:[0-9a-f]{64})/.exec(baseOut)![1]!;
      const images = new Map<string, { tar: string; chain: string[] }>();
      images.set(ANCHOR, { tar: baseTar, chain: [baseLayer] });
      for (const [i, im] of IMAGES.entries()) {
        const tar = path.join(dir, `img${i}.tar`);
        const out: string = await kit.sh(py, [path.join(projectRoot, 'test', 'containerd', 'addlayers.py'), baseTar, tar, im.name, ...im.words]);
        images.set(im.name, { tar, chain: chainIds([...out.matchAll(/layer (sha256:[0-9a-f]{64})/g)].map((m) => m[1]!)) });
      }

      let daemon = spawnDaemon();
      await daemon.waitFor((e) => e.ev === 'loaded', 300_000, 'the first daemon to load');
      daemon.go();
      await daemon.waitFor((e) => e.ev === 'serving', 600_000, 'the first daemon to serve');
      console.log(`  first daemon serving at ${Date.now() - t0} ms`);
      ctd = await kit.startContainerd(path.join(dir, 'ctd'), { proxy: { [SN]: sock } });
      const ctr = (...a: string[]): Promise<string> => ctd.ctr(['-n', NS, ...a]);
      const snap = (...a: string[]): Promise<string> => ctr('snapshots', '--snapshotter', SN, ...a);
      await ctr('images', 'import', '--snapshotter', SN, baseTar);
      let gcN = 0;
      /** A synchronous collection that includes this snapshotter: a deletion marks it for collection, then an image removal with --sync runs the collector. */
      const collect = async (): Promise<void> => {
        const k = `gc-${gcN++}`;
        await snap('prepare', k);
        await snap('rm', k);
        await ctr('images', 'tag', ANCHOR, `localhost/tjcrash/gc:${k}`);
        await ctr('images', 'rm', '--sync', `localhost/tjcrash/gc:${k}`);
      };

      /** The acknowledged state: images imported (and not removed), active snapshots → the image they sit on. */
      const acked = { images: new Set<string>([ANCHOR]), actives: new Map<string, string>() };
      /** Snapshots that must exist for `st`: key → [kind, parent]. */
      const expected = (st: { images: Set<string>; actives: Map<string, string> }): Map<string, [string, string]> => {
        const m = new Map<string, [string, string]>();
        const addChain = (name: string) => {
          const c = images.get(name)!.chain;
          c.forEach((id, i) => m.set(id, ['Committed', i === 0 ? '' : c[i - 1]!]));
        };
        for (const n of st.images) addChain(n);
        for (const [k, n] of st.actives) { addChain(n); const c = images.get(n)!.chain; m.set(k, ['Active', c[c.length - 1]!]); }
        return m;
      };

      const poolName = `${devicePrefixFor(home)}-pool`;
      const cli = cliOn(b, home);
      /** The pool against the journal: disagreements (empty: none). */
      const poolAgainstJournal = async (): Promise<{ problems: string[]; devices: any[] }> => {
        const problems: string[] = [];
        const devices: any[] = await cli.ok('ls');
        const ids = devices.map((d) => d.deviceId as number).sort((x, y) => x - y);
        const metaDev = await b.findLoop(path.join(home, 'devicemapper', 'metadata'));
        assert.ok(metaDev, 'the metadata file is attached');
        await b.message(poolName, 'reserve_metadata_snap');
        try {
          // The kernel commits the pool before it takes the snapshot: no I/O runs now, so its used-block count
          // and the snapshot's mappings describe the same moment.
          const status = await b.poolStatusOk(poolName);
          await run('thin_check', ['-q', '-m', metaDev!]).catch((err) => { problems.push(`thin_check -m: ${(err as { stderr?: string }).stderr ?? err}`); });
          const ls = (await run('thin_ls', ['-m', '--no-headers', '-o', 'DEV', metaDev!])).stdout;
          const lsIds = ls.split('\n').map((l) => l.trim()).filter(Boolean).map(Number).sort((x, y) => x - y);
          if (JSON.stringify(lsIds) !== JSON.stringify(ids)) problems.push(`thin_ls ids [${lsIds}] ≠ journal devices [${ids}]`);
          const dump = (await run('thin_dump', ['-m', metaDev!], { maxBuffer: 256 << 20 })).stdout;
          const dumpIds = [...dump.matchAll(/<device\b[^>]*\bdev_id="(\d+)"/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
          if (JSON.stringify(dumpIds) !== JSON.stringify(ids)) problems.push(`thin_dump ids [${dumpIds}] ≠ journal devices [${ids}]`);
          const mapped = mappedDataBlocks(dump);
          if (status.usedDataBlocks !== mapped) problems.push(`pool uses ${status.usedDataBlocks} data blocks, its devices map ${mapped}: ${status.usedDataBlocks - mapped} leaked`);
        } finally {
          await b.message(poolName, 'release_metadata_snap');
        }
        return { problems, devices };
      };

      /** What containerd and the daemon list against what must exist. */
      const listedAgainst = async (must: Map<string, [string, string]>, exact: boolean, label: string) => {
        const rows = snapshotRows(await snap('ls'));
        const { problems, devices } = await poolAgainstJournal();
        const tj = devices.filter((d) => d.snapshot).map((d) => ({ key: stripBackendKey(d.snapshot.key), parent: d.snapshot.parent === null ? '' : stripBackendKey(d.snapshot.parent), kind: d.snapshot.kind as string }));
        const kindOf = { active: 'Active', committed: 'Committed', view: 'View' } as Record<string, string>;
        for (const [k, [kind, parent]] of must) {
          const c = rows.find((r) => r.key === k);
          if (!c) problems.push(`containerd lost ${kind} ${k}`);
          else if (c.kind !== kind || c.parent !== parent) problems.push(`containerd has ${k} as ${c.kind} on "${c.parent}", acknowledged ${kind} on "${parent}"`);
          const t = tj.filter((x) => x.key === k && kindOf[x.kind] === kind && x.parent === parent);
          if (t.length === 0) problems.push(`the daemon lost ${kind} ${k} on "${parent}" (it has ${JSON.stringify(tj.filter((x) => x.key === k))})`);
        }
        if (exact) {
          const want = [...must.keys()].sort();
          if (JSON.stringify(rows.map((r) => r.key).sort()) !== JSON.stringify(want)) problems.push(`containerd lists [${rows.map((r) => r.key)}], expected exactly [${want}]`);
          if (JSON.stringify(tj.map((r) => r.key).sort()) !== JSON.stringify(want)) problems.push(`the daemon lists [${tj.map((r) => r.key)}], expected exactly [${want}]`);
        }
        assert.equal(problems, [], `${label}: ${problems.join('; ')}`);
        return rows;
      };

      const stats = { kills: 0, insideCall: new Map<string, number>(), betweenCalls: 0, acked: 0, failed: 0, redial: [] as { ms: number; tries: number }[], restartMs: [] as number[], ops: new Map<string, number>() };
      let activeN = 0;
      let next = spawnDaemon();
      for (let i = 0; i < KILLS; i++) {
        withinLimit(`kill ${i}`);
        // The operation: whatever the acknowledged state admits.
        const absent = IMAGES.filter((im) => !acked.images.has(im.name));
        const present = [...acked.images].filter((n) => n !== ANCHOR);
        const choices: { kind: string; subject: string; image?: string; go: () => Promise<string> }[] = [];
        if (absent.length) { const im = pick(absent); choices.push({ kind: 'import', subject: im.name, go: () => ctr('images', 'import', '--snapshotter', SN, images.get(im.name)!.tar) }); }
        if (present.length) { const n = pick(present); choices.push({ kind: 'images rm', subject: n, go: () => ctr('images', 'rm', '--sync', n) }); }
        if (present.length && acked.actives.size < 3) {
          const n = pick(present);
          const k = `ctr-${activeN++}`;
          const c = images.get(n)!.chain;
          choices.push({ kind: 'prepare', subject: k, image: n, go: () => snap('prepare', k, c[c.length - 1]!) });
        }
        if (acked.actives.size) { const k = pick([...acked.actives.keys()]); choices.push({ kind: 'snapshots rm', subject: k, go: async () => { await snap('rm', k); await collect(); return ''; } }); }
        const op = pick(choices);
        stats.ops.set(op.kind, (stats.ops.get(op.kind) ?? 0) + 1);
        const from = daemon.events.length;
        let settled = false;
        const result = op.go().then(() => { settled = true; return true; }, (err: Error) => { settled = true; return err; });
        // The moment: inside the k-th call the daemon serves for this operation, or after a random time; if the
        // operation ends first, right after it (between calls).
        if (rnd() < 0.5) {
          const k = Math.floor(rnd() * 4);
          const nap = Math.floor(rnd() * rnd() * 600);
          const inCall = daemon.waitFor((_e, idx) => daemon.events.slice(from, idx + 1).filter((x) => x.ev === 'begin').length > k, 600_000, `call ${k} of ${op.kind}`, from)
            .then(() => sleep(nap), () => {});
          await Promise.race([inCall, result]);
        } else {
          await Promise.race([sleep(Math.floor(rnd() * 8000)), result]);
        }
        const settledBeforeKill = settled;
        const killed = daemon;
        const inflight = killed.events.slice(from).filter((e) => e.ev === 'begin' && !killed.events.some((x) => x.ev === 'end' && x.n === e.n));
        await killed.kill();
        stats.kills++;
        if (inflight.length) for (const e of inflight) stats.insideCall.set(e.call!, (stats.insideCall.get(e.call!) ?? 0) + 1);
        else stats.betweenCalls++;
        const outcome = await result;
        const ok = outcome === true;
        if (!ok && settledBeforeKill) throw new Error(`${op.kind} ${op.subject} failed before the daemon was killed: ${outcome}`);
        if (ok) stats.acked++; else stats.failed++;
        const label = `kill ${i} (${op.kind} ${op.subject}, ${ok ? 'acknowledged' : 'failed'}, ${inflight.length ? `inside ${inflight.map((e) => e.call).join('+')}` : 'between calls'}, ${settled ? 'the call had returned' : 'in flight'})`;

        // Restart on the same home: the next daemon was loaded while this one ran.
        const tr = Date.now();
        daemon = next;
        await daemon.waitFor((e) => e.ev === 'loaded', 300_000, `daemon ${i + 1} to load`);
        daemon.go();
        try {
          await daemon.waitFor((e) => e.ev === 'serving', 300_000, `daemon ${i + 1} to serve (recovery after ${label})`);
        } catch (err) {
          (err as Error).message = `${label}: ${(err as Error).message}`;
          throw err;
        }
        stats.restartMs.push(Date.now() - tr);
        if (i + 1 < KILLS) next = spawnDaemon();

        // containerd works on: its proxy client re-dials the socket by itself (gRPC backoff, at most 3 s in
        // containerd 1.6); until it has, calls fail UNAVAILABLE. Stat goes through containerd to the daemon.
        const td = Date.now();
        let tries = 0;
        for (;;) {
          tries++;
          try { await snap('info', baseLayer); break; } catch (err) {
            if (!/Unavailable|connection|transport/i.test(String(err)) || Date.now() - td > 60_000) throw new Error(`${label}: containerd does not reach the restarted daemon: ${err}`);
            await sleep(100);
          }
        }
        stats.redial.push({ ms: Date.now() - td, tries });

        // The acknowledged state, with the operation's own outcome taken as containerd now has it (its
        // metadata changes in one transaction: all or nothing) — the killed call was never acknowledged.
        if (ok) {
          if (op.kind === 'import') acked.images.add(op.subject);
          if (op.kind === 'images rm') acked.images.delete(op.subject);
          if (op.kind === 'prepare') acked.actives.set(op.subject, op.image!);
          if (op.kind === 'snapshots rm') acked.actives.delete(op.subject);
        }
        const must = expected({
          images: new Set([...acked.images].filter((n) => ok || n !== op.subject)),
          actives: new Map([...acked.actives].filter(([k]) => ok || k !== op.subject)),
        });
        const rows = await listedAgainst(must, false, label);
        if (!ok) {
          // Adopt the killed operation's outcome as containerd has it; an image whose unpack was cut short is
          // removed (its record exists, its layers do not all), as a client retrying the import would find it.
          const names = (await ctr('images', 'ls', '-q')).split('\n').map((s) => s.trim()).filter(Boolean);
          if (op.kind === 'import' || op.kind === 'images rm') {
            const c = images.get(op.subject)!.chain;
            const whole = c.every((id) => rows.some((r) => r.key === id && r.kind === 'Committed'));
            if (names.includes(op.subject) && whole && op.kind === 'import') acked.images.add(op.subject);
            else if (names.includes(op.subject) && op.kind === 'images rm') acked.images.add(op.subject);
            else { acked.images.delete(op.subject); if (names.includes(op.subject)) await ctr('images', 'rm', op.subject); }
          }
          if (op.kind === 'prepare' || op.kind === 'snapshots rm') {
            if (rows.some((r) => r.key === op.subject && r.kind === 'Active')) {
              if (op.kind === 'prepare') acked.actives.set(op.subject, op.image!);
            } else acked.actives.delete(op.subject);
          }
        }
        // A new Prepare through containerd succeeds on the restarted daemon.
        const probe = `probe-${i}`;
        await snap('prepare', probe, baseLayer);
        await snap('rm', probe);
        console.log(`  ${label}: restart ${stats.restartMs[stats.restartMs.length - 1]} ms, containerd re-dialled in ${stats.redial[stats.redial.length - 1]!.ms} ms (${stats.redial[stats.redial.length - 1]!.tries} tries); checks passed at ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      }

      // Everything removed and collected: only the anchor's layer is left, in containerd and in the daemon.
      // (Active snapshots this harness made — ctr-*, probe-*, gc-* a kill may have left — and every image but
      // the anchor go first.)
      withinLimit('the final collection');
      for (const r of snapshotRows(await snap('ls')).filter((x) => x.kind === 'Active')) await snap('rm', r.key);
      for (const n of (await ctr('images', 'ls', '-q')).split('\n').map((x) => x.trim()).filter((x) => x && x !== ANCHOR)) await ctr('images', 'rm', n);
      acked.actives.clear();
      acked.images = new Set([ANCHOR]);
      await collect();
      await listedAgainst(expected(acked), true, 'after the final collection');
      await ctd.stop();
      ctd = null;
      const exit = daemon.waitFor((e) => e.ev === 'exit', 120_000, 'the daemon to stop');
      daemon.proc.kill('SIGTERM');
      assert.is((await exit).code, 0, 'the daemon exits 0 on SIGTERM');
      const v = await cli.run('verify', '--kernel');
      assert.is(v.code, 0, `verify --kernel at the end: ${v.out}${v.err}`);

      const inside = [...stats.insideCall.values()].reduce((x, y) => x + y, 0);
      const redial = stats.redial.map((r) => r.ms);
      console.log(`  snapshotter crash test: ${stats.kills} kills (${inside} inside a call: ${JSON.stringify(Object.fromEntries(stats.insideCall))}; ${stats.betweenCalls} between calls), operations ${JSON.stringify(Object.fromEntries(stats.ops))}, ${stats.acked} acknowledged before the kill, ${stats.failed} failed by it; restart (recovery) ${Math.min(...stats.restartMs)}–${Math.max(...stats.restartMs)} ms; containerd re-dialled in ${Math.min(...redial)}–${Math.max(...redial)} ms (${stats.redial.filter((r) => r.tries > 1).length} restarts with failed calls first, at most ${Math.max(...stats.redial.map((r) => r.tries)) - 1}); ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      assert.ok(stats.kills >= Math.min(10, KILLS));
    } finally {
      await ctd?.stop().catch(() => {});
      for (const d of daemons) await d.kill();
      const prefix = existsSync(home) ? devicePrefixFor(home) : null;
      await removeKernelLeftovers(b, dir, (name) => prefix !== null && (name.startsWith(prefix + '-') || name === `${prefix}:verify`));
    }
  });
}
test.run();
