// pnpm bench snapshotter — thinjournal's snapshotter daemon against containerd's built-in devmapper
// snapshotter (io.containerd.snapshotter.v1.devmapper, on its own loopback thin pool made with dmsetup), both
// behind one containerd in one run, both driven the same way: `ctr snapshots --snapshotter S prepare|commit|rm`
// (ctr → containerd's gRPC API → containerd's metadata layer → the snapshotter: in-process for devmapper,
// the proxy plugin's gRPC socket for thinjournal). Every figure therefore includes a ctr process start and
// containerd's own work, the same for both; the `ctr version` line shows that fixed part.
//   cycle:      prepare K (parent: a committed base) → commit C K → rm C         N times (BENCH_N, default 20)
//   chain:      prepare/commit 20 layers, each the parent of the next; then rm them top down
//   concurrent: 64 prepares at once on the committed base (64 ctr processes); then rm them
//   crash:      each snapshotter killed at the same points --crash=N times per step (default 3; 0: none):
//               during a prepare, a commit and a remove (ctr snapshots rm + a synchronous collection, which is
//               when containerd calls the snapshotter's Remove), at the same fraction of that step's own
//               measured duration (a seeded PRNG, --seed): thinjournal by SIGKILL of its daemon, containerd's
//               devmapper (in-process) by SIGKILL of containerd; each on a containerd and pool of its own.
//               After each restart every snapshot containerd lists is mounted (a view of a committed one) and
//               removed; at the end, with everything removed and collected, the pool's thin ids are compared
//               with the snapshotter's own metadata (thinjournal's journal; devmapper's pool database, read
//               with containerd's own code by test/containerd/devmapper-devices): leaked devices (thin ids it
//               does not account for), leaked space (the data those map), devices it keeps but cannot use
//               (devmapper's Faulty) and snapshots that could not be mounted or removed.
// Prints per-phase figures and the ratio thinjournal/devmapper (above 1: thinjournal faster). Needs a real
// device-mapper: on a machine without one it boots the dmvm guest once (DMVM_MEM=2048) and runs there; under
// that guest's software emulation absolute times mean little, compare ratios. With no thinjournal daemon on
// this branch (packages/snapshotter/bin/spawn-for-suite.sh and `thinjournal snapshotter`), it prints
// devmapper's figures alone and says thinjournal was not measured.
//   node bench/snapshotter.mjs [--n=20] [--chain=20] [--concurrent=64] [--crash=3] [--seed=S] [--throughput=0]
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const kitUrl = pathToFileURL(path.join(root, 'test', 'containerd', 'kit.mjs')).href;

async function direct() {
  const { probeDeviceMapper } = await import(pathToFileURL(path.join(root, 'packages/dm/dist/src/index.js')).href);
  return probeDeviceMapper().available && process.getuid?.() === 0;
}

const arg = (args, name, dflt) => Number((args.find((a) => a.startsWith(`--${name}=`)) ?? `--${name}=${dflt}`).split('=')[1]);
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;

async function waitFor(p, child, ms) {
  const t = Date.now();
  while (!existsSync(p)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`thinjournal snapshotter exited ${child.exitCode ?? child.signalCode} before making ${p}`);
    if (Date.now() - t > ms) throw new Error(`no socket ${p} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The three phases against snapshotter `sn`; returns { cycle: ms per cycle, chain: ms, chainRm: ms, concurrent: ms, concurrentRm: ms }. */
async function phases(ctd, sn, { n, chain, conc }) {
  const ctr = (...a) => ctd.ctr(['-n', 'tjbench', 'snapshots', '--snapshotter', sn, ...a]);
  const tag = `${sn}-${process.pid}`;
  await ctr('prepare', `${tag}-base-k`);
  await ctr('commit', `${tag}-base`, `${tag}-base-k`);
  const r = {};
  // warm-up cycle, not counted
  await ctr('prepare', `${tag}-w`, `${tag}-base`);
  await ctr('commit', `${tag}-wc`, `${tag}-w`);
  await ctr('rm', `${tag}-wc`);
  let t = performance.now();
  for (let i = 0; i < n; i++) {
    await ctr('prepare', `${tag}-k${i}`, `${tag}-base`);
    await ctr('commit', `${tag}-c${i}`, `${tag}-k${i}`);
    await ctr('rm', `${tag}-c${i}`);
  }
  r.cycle = (performance.now() - t) / n;
  t = performance.now();
  let parent = '';
  for (let i = 0; i < chain; i++) {
    await ctr('prepare', `${tag}-l${i}-k`, ...(parent ? [parent] : []));
    await ctr('commit', `${tag}-l${i}`, `${tag}-l${i}-k`);
    parent = `${tag}-l${i}`;
  }
  r.chain = performance.now() - t;
  t = performance.now();
  for (let i = chain - 1; i >= 0; i--) await ctr('rm', `${tag}-l${i}`);
  r.chainRm = performance.now() - t;
  t = performance.now();
  await Promise.all(Array.from({ length: conc }, (_, i) => ctr('prepare', `${tag}-p${i}`, `${tag}-base`)));
  r.concurrent = performance.now() - t;
  t = performance.now();
  await Promise.all(Array.from({ length: conc }, (_, i) => ctr('rm', `${tag}-p${i}`)));
  r.concurrentRm = performance.now() - t;
  await ctr('rm', `${tag}-base`);
  return r;
}

async function bench(args) {
  const kit = await import(kitUrl);
  const n = arg(args, 'n', process.env.BENCH_N || 20);
  const chain = arg(args, 'chain', 20);
  const conc = arg(args, 'concurrent', 64);
  const missing = kit.missingTools();
  if (missing.length) {
    console.log(`snapshotter bench skipped: missing ${missing.join(', ')} (node test/containerd/prepare.mjs installs them)`);
    return;
  }
  await kit.ensureCgroup2();
  const dir = kit.tmpDir('tjbench-snap-');
  const svc = kit.thinjournalService();
  const throughput = arg(args, 'throughput', 1) !== 0;
  const pool = await kit.makeThinPool(path.join(dir, 'pool'), `tjbench${process.pid}-pool`, { dataBytes: 4 * 2 ** 30 });
  let daemon = null;
  let ctd = null;
  const home = path.join(dir, 'tjhome');
  try {
    const proxy = {};
    if (svc.ok && throughput) {
      const sock = path.join(dir, 'tj.sock');
      const opts = (process.env.THINJOURNAL_BENCH_OPTS ?? 'dm.loopdatasize=4G,dm.loopmetadatasize=128M,dm.basesize=64M,dm.fs=ext4').split(',').filter(Boolean).flatMap((o) => ['--opt', o]);
      daemon = spawn(process.execPath, [kit.CLI, 'snapshotter', '--home', home, '--socket', sock, ...opts], { stdio: ['ignore', 'inherit', 'inherit'] });
      await waitFor(sock, daemon, 300_000);
      proxy.thinjournal = sock;
    }
    ctd = await kit.startContainerd(path.join(dir, 'ctd'), { devmapper: { pool: pool.name, root: path.join(dir, 'devmapper'), baseImageSize: '64MB' }, proxy });
    let t = performance.now();
    for (let i = 0; i < 5; i++) await ctd.ctr(['version']);
    const ctrFixed = (performance.now() - t) / 5;
    console.log(`snapshotter bench: containerd ${(await ctd.ctr(['version'])).match(/Version:\s+(\S+)/g)?.pop()?.split(/\s+/)[1] ?? '?'}, N=${n} cycles, ${chain}-layer chain, ${conc} concurrent prepares${process.env.DMVM_GUEST ? ', dmvm guest (emulated: compare ratios only)' : ''}`);
    console.log(`ctr version round trip (process start + one gRPC call, in every figure below): ${secs(ctrFixed)}`);
    // --throughput=0: the crash comparison alone.
    if (throughput) {
      const results = {};
      results.devmapper = await phases(ctd, 'devmapper', { n, chain, conc });
      if (svc.ok) results.thinjournal = await phases(ctd, 'thinjournal', { n, chain, conc });
      const rows = [
        ['prepare+commit+rm cycles per second', (r) => 1000 / r.cycle, (x) => `${x.toFixed(2)}/s`, true],
        [`${chain}-layer chain (prepare+commit each)`, (r) => r.chain, secs, false],
        [`${chain}-layer chain removal`, (r) => r.chainRm, secs, false],
        [`${conc} concurrent prepares`, (r) => r.concurrent, secs, false],
        [`${conc} concurrent removes`, (r) => r.concurrentRm, secs, false],
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      console.log(`\n${'phase'.padEnd(w)}  ${'devmapper'.padStart(12)}  ${'thinjournal'.padStart(12)}  thinjournal vs devmapper`);
      for (const [label, get, fmt, higherBetter] of rows) {
        const d = get(results.devmapper);
        const j = results.thinjournal ? get(results.thinjournal) : null;
        const ratio = j === null ? 'not measured' : `${(higherBetter ? j / d : d / j).toFixed(2)}x ${higherBetter ? 'throughput' : 'speed'}`;
        console.log(`${label.padEnd(w)}  ${fmt(d).padStart(12)}  ${(j === null ? '-' : fmt(j)).padStart(12)}  ${ratio}`);
      }
      if (!svc.ok) console.log(`\nthinjournal was not measured: ${svc.why}`);
      else {
        const ok = 1000 / results.thinjournal.cycle >= 1000 / results.devmapper.cycle;
        console.log(`\ntarget: at least devmapper's cycle throughput — ${ok ? 'met' : 'NOT met'}`);
      }
    }
    const perStep = arg(args, 'crash', 3);
    if (perStep > 0 && svc.ok) await crashComparison(kit, dir, { perStep, seed: arg(args, 'seed', Date.now() % 2 ** 31) });
  } finally {
    await ctd?.stop();
    if (daemon) {
      const done = new Promise((r) => daemon.once('exit', r));
      if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGTERM');
      await done;
      await kit.sh(process.execPath, [kit.CLI, 'shutdown', '--home', home]).catch(() => {});
    }
    await pool.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the crash comparison ---------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const NS = 'tjcrash';

/** mulberry32, so a run's kill points can be replayed (--seed). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * thinjournal's daemon, restartable on one home: `thinjournal snapshotter` as the crash test runs it
 * (test/src/kernel/snapshotter-crash-child.ts, the CLI's main), its modules staged once in tmpfs so that a
 * restart costs the daemon's start (recovery included), not module loading over the guest's 9p.
 */
async function thinjournalDaemon(dir, home, sock, opts) {
  const stage = await import(pathToFileURL(path.join(root, 'test', 'dist', 'kernel', 'stage.js')).href);
  const childSrc = path.join(root, 'test', 'dist', 'kernel', 'snapshotter-crash-child.js');
  const modules = await stage.discoverModules(path.join(dir, 'scratch'), childSrc, ['--discover']);
  const st = stage.stageModules(path.join(dir, 'stage'), { projectRoot: root, files: modules });
  const proto = path.join(root, 'packages', 'snapshotter', 'proto');
  cpSync(proto, path.join(st.root, proto), { recursive: true });
  const js = path.join(st.root, childSrc);
  return async () => {
    const child = spawn(process.execPath, [js, JSON.stringify({ home, socket: sock, opts })], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '', went = false;
    child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    await new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out = (out + d).slice(-400);
        if (!went && out.includes('"ev":"loaded"')) { went = true; child.stdin.write('go\n'); }
        if (out.includes('"ev":"serving"')) resolve();
      });
      child.once('exit', (c, sig) => reject(new Error(`thinjournal snapshotter exited ${c ?? sig} before serving: ${err}`)));
    });
    const exited = new Promise((r) => child.once('exit', r));
    return {
      async kill() { child.kill('SIGKILL'); await exited; },
      async stop() { child.kill('SIGTERM'); await exited; },
    };
  };
}

/** Thin ids in a live pool's metadata → mapped bytes (thin_ls on a metadata snapshot). */
async function poolThins(kit, poolName, metaDev) {
  await kit.sh('dmsetup', ['message', poolName, '0', 'reserve_metadata_snap']);
  try {
    const out = await kit.sh('thin_ls', ['--metadata-snap', '--no-headers', '-o', 'DEV,MAPPED_SECTORS', metaDev]);
    return new Map(out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length === 2).map(([d, s]) => [Number(d), Number(s) * 512]));
  } finally {
    await kit.sh('dmsetup', ['message', poolName, '0', 'release_metadata_snap']);
  }
}

function snapshotRows(text) {
  return text.trim().split('\n').slice(1).filter(Boolean).map((l) => {
    const f = l.trim().split(/\s+/);
    return f.length === 3 ? { key: f[0], parent: f[1], kind: f[2] } : { key: f[0], parent: '', kind: f[f.length - 1] };
  });
}

/**
 * One snapshotter through the kill points. `t`: { sn, ctd(): containerd now, kill(), restart() }. Returns the
 * per-snapshotter counts of the table (the final account is added by the caller, which knows the metadata).
 */
async function killPoints(kit, t, { points, baseTar, anchor, mnt }) {
  const ctr = (...a) => t.ctd().ctr(['-n', NS, ...a]);
  const snap = (...a) => ctr('snapshots', '--snapshotter', t.sn, ...a);
  await ctr('images', 'import', '--snapshotter', t.sn, baseTar);
  const base = snapshotRows(await snap('ls'))[0].key;
  let gcN = 0;
  const collect = async () => {
    const g = `localhost/tjcrash/gc:${gcN++}`;
    await ctr('images', 'tag', anchor, g);
    await ctr('images', 'rm', '--sync', g);
  };
  const reachable = async () => {
    const t0 = Date.now();
    for (;;) {
      try { await snap('info', base); return Date.now() - t0; } catch (err) {
        if (Date.now() - t0 > 120_000) throw err;
        await sleep(100);
      }
    }
  };
  /** A step (and what it needs first); `kill` set: the snapshotter dies at `kill` ms into the step itself. */
  const step = async (phase, tag, kill) => {
    const k = `k-${tag}`, c = `c-${tag}`;
    if (phase !== 'prepare') await snap('prepare', k, base);
    if (phase === 'remove') { await snap('commit', c, k); await snap('rm', c); }
    const t0 = performance.now();
    const op = phase === 'prepare' ? snap('prepare', k, base) : phase === 'commit' ? snap('commit', c, k) : collect();
    if (kill === undefined) { await op; return performance.now() - t0; }
    const res = op.then(() => true, (e) => e);
    await Promise.race([sleep(kill), res]);
    await t.kill();
    await res;
    await t.restart();
    await reachable();
    return performance.now() - t0;
  };
  // Each step's own duration, measured once without a kill (and removed again).
  const dur = {};
  for (const phase of ['prepare', 'commit', 'remove']) {
    dur[phase] = await step(phase, `cal-${phase}`);
    for (const r of snapshotRows(await snap('ls')).filter((x) => x.key !== base)) await snap('rm', r.key);
    await collect();
  }
  const unusable = [];
  let kills = 0;
  for (const [i, { phase, fraction }] of points.entries()) {
    await step(phase, `${i}`, Math.floor(fraction * dur[phase]));
    kills++;
    console.log(`  ${t.sn}: kill ${i} in ${phase} at ${Math.floor(fraction * dur[phase])} ms of ${Math.round(dur[phase])} ms; restarted`);
    // Every snapshot containerd lists (but the base) must mount and go away.
    let rows = snapshotRows(await snap('ls')).filter((x) => x.key !== base);
    rows = [...rows.filter((x) => x.kind !== 'Committed'), ...rows.filter((x) => x.kind === 'Committed')];
    for (const r of rows) {
      try {
        let key = r.key;
        if (r.kind === 'Committed') { key = `v-${r.key}`; await snap('view', key, r.key); }
        const m = /^mount -t (\S+) (\S+) \S+ -o (\S*)$/m.exec(await snap('mounts', mnt, key));
        if (!m) throw new Error(`no mount for ${key}`);
        await kit.sh('mount', ['-t', m[1], ...(m[3] ? ['-o', m[3]] : []), m[2], mnt]);
        await kit.sh('umount', [mnt]);
        if (key !== r.key) await snap('rm', key);
        await snap('rm', r.key);
      } catch (err) {
        unusable.push(`${r.key} (${r.kind}) after the kill in ${phase}: ${String(err.message ?? err).split('\n')[0]}`);
        await snap('rm', `v-${r.key}`).catch(() => {});
        await snap('rm', r.key).catch(() => {});
      }
    }
    await collect();
  }
  // What is left once everything but the anchor's layer is removed and collected.
  for (const r of snapshotRows(await snap('ls')).filter((x) => x.key !== base)) await snap('rm', r.key).catch(() => {});
  await snap('prepare', 'last', base);
  await snap('rm', 'last');
  await collect();
  return { kills, unusable, dur, listed: snapshotRows(await snap('ls')).length };
}

async function crashComparison(kit, dir, { perStep, seed }) {
  const rnd = prng(seed);
  const points = [];
  for (let i = 0; i < perStep; i++) for (const phase of ['prepare', 'commit', 'remove']) points.push({ phase, fraction: rnd() });
  const tool = kit.devmapperDevicesTool();
  const py = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const anchor = 'localhost/tjcrash/anchor:1';
  const baseTar = path.join(dir, 'anchor.tar');
  await kit.sh(py, [path.join(kit.KIT, 'mkimage.py'), baseTar, anchor], { env: { ...process.env, BUSYBOX: '/bin/busybox' } });
  const mnt = path.join(dir, 'mnt');
  mkdirSync(mnt, { recursive: true });
  console.log(`\ncrash comparison: seed ${seed} (--seed=${seed} replays it), ${points.length} kills each: ${perStep}× during a prepare, a commit and a remove, at the same fractions of each step's own duration`);
  const res = {};

  // containerd's devmapper: in containerd's process, so containerd is what dies.
  {
    const pool = await kit.makeThinPool(path.join(dir, 'cpool'), `tjcrash${process.pid}-pool`, { dataBytes: 2 * 2 ** 30 });
    const cdir = path.join(dir, 'ctd-dm');
    const dmRoot = path.join(dir, 'devmapper-crash');
    const start = () => kit.startContainerd(cdir, { devmapper: { pool: pool.name, root: dmRoot, baseImageSize: '64MB' } });
    let ctd = await start();
    try {
      const t = {
        sn: 'devmapper', ctd: () => ctd,
        async kill() { const e = new Promise((r) => ctd.child.once('exit', r)); ctd.child.kill('SIGKILL'); await e; },
        async restart() { ctd = await start(); },
      };
      const r = await killPoints(kit, t, { points, baseTar, anchor, mnt });
      await ctd.stop();
      const thins = await poolThins(kit, pool.name, pool.loops[0]);
      let devices = [];
      if (tool.bin) devices = (await kit.sh(tool.bin, [path.join(dmRoot, `${pool.name}.db`)])).split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const known = new Set(devices.map((d) => d.deviceId));
      const leaked = [...thins.keys()].filter((id) => !known.has(id));
      const faulty = devices.filter((d) => d.state === 'Faulty');
      res.devmapper = {
        ...r, metadata: tool.bin ? 'its pool database' : `not read: ${tool.why}`,
        leaked: leaked.length, leakedBytes: leaked.reduce((n, id) => n + thins.get(id), 0),
        faulty: faulty.length, faultyBytes: faulty.reduce((n, d) => n + (thins.get(d.deviceId) ?? 0), 0),
        // kept: one device per snapshot containerd still lists (devmapper has no base device: a snapshot
        // without a parent is a new thin device with its own mkfs)
        leftBehind: devices.filter((d) => d.state !== 'Faulty').length - r.listed,
      };
    } finally {
      await ctd.stop().catch(() => {});
      await pool.remove();
    }
  }

  // thinjournal: its daemon dies; containerd stays up and re-dials.
  {
    const home = path.join(dir, 'tjcrash-home');
    const sock = path.join(dir, 'tjcrash.sock');
    const opts = (process.env.THINJOURNAL_BENCH_OPTS ?? 'dm.loopdatasize=2G,dm.loopmetadatasize=128M,dm.basesize=64M,dm.fs=ext4').split(',').filter(Boolean);
    const startDaemon = await thinjournalDaemon(dir, home, sock, opts);
    let daemon = await startDaemon();
    const ctd = await kit.startContainerd(path.join(dir, 'ctd-tj'), { proxy: { thinjournal: sock } });
    try {
      const t = { sn: 'thinjournal', ctd: () => ctd, async kill() { await daemon.kill(); }, async restart() { daemon = await startDaemon(); } };
      const r = await killPoints(kit, t, { points, baseTar, anchor, mnt });
      const { main } = await import(pathToFileURL(path.join(root, 'packages', 'cli', 'dist', 'src', 'index.js')).href);
      const { KernelBackend } = await import(pathToFileURL(path.join(root, 'packages', 'dm', 'dist', 'src', 'index.js')).href);
      const { devicePrefixFor } = await import(pathToFileURL(path.join(root, 'packages', 'driver', 'dist', 'src', 'index.js')).href);
      let out = '', err = '';
      const io = { stdout: { write: (x) => (out += x), isTTY: false }, stderr: { write: (x) => (err += x), isTTY: false }, env: {}, backend: new KernelBackend() };
      if ((await main(['ls', '--home', home, '--json'], io)) !== 0) throw new Error(`thinjournal ls: ${err}`);
      const devices = JSON.parse(out.trim());
      const metaDev = (await kit.sh('losetup', ['-j', path.join(home, 'devicemapper', 'metadata')])).split(':')[0];
      const thins = await poolThins(kit, `${devicePrefixFor(home)}-pool`, metaDev);
      const known = new Set(devices.map((d) => d.deviceId));
      const leaked = [...thins.keys()].filter((id) => !known.has(id));
      res.thinjournal = {
        ...r, metadata: 'its journal',
        leaked: leaked.length, leakedBytes: leaked.reduce((n, id) => n + thins.get(id), 0),
        faulty: 0, faultyBytes: 0,
        // kept: the base image and one device per snapshot containerd still lists
        leftBehind: devices.length - 1 - r.listed,
      };
      await ctd.stop();
      await daemon.stop();
    } finally {
      await ctd.stop().catch(() => {});
      await daemon.kill().catch(() => {});
      await kit.sh(process.execPath, [kit.CLI, 'shutdown', '--home', home]).catch(() => {});
    }
  }

  const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const rows = [
    ['kills', (r) => String(r.kills)],
    ['leaked thin devices (not in its metadata)', (r) => String(r.leaked)],
    ['leaked space (data they map)', (r) => mib(r.leakedBytes)],
    ['devices kept but unusable (Faulty)', (r) => `${r.faulty} (${mib(r.faultyBytes)})`],
    ['devices left after removing everything', (r) => String(r.leftBehind)],
    ['snapshots listed but not mountable/removable', (r) => String(r.unusable.length)],
    ['step durations prepare/commit/remove (s)', (r) => ['prepare', 'commit', 'remove'].map((p) => (r.dur[p] / 1000).toFixed(1)).join('/')],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(`\n${'after the kills'.padEnd(w)}  ${'devmapper'.padStart(16)}  ${'thinjournal'.padStart(16)}`);
  for (const [label, get] of rows) console.log(`${label.padEnd(w)}  ${get(res.devmapper).padStart(16)}  ${get(res.thinjournal).padStart(16)}`);
  for (const sn of ['devmapper', 'thinjournal']) for (const u of res[sn].unusable) console.log(`  ${sn}: unusable: ${u}`);
  if (res.devmapper.metadata !== 'its pool database') console.log(`  devmapper's metadata ${res.devmapper.metadata}`);
  const tj = res.thinjournal;
  const ok = tj.leaked === 0 && tj.unusable.length === 0 && tj.leftBehind === 0;
  console.log(`\ntarget: zero leaks and zero unusable snapshots for thinjournal — ${ok ? 'met' : 'NOT met'}`);
}

export default async function snapshotterBench(args = []) {
  if (await direct()) return bench(args);
  const vm = path.resolve(root, '..', 'shared', 'dmvm', 'run-in-vm.sh');
  if (!existsSync(vm)) {
    console.log('snapshotter bench skipped: no working device-mapper here (or not root) and no ../shared/dmvm guest');
    return;
  }
  // The guest runs the host's binaries and has no network: the devmapper metadata reader is built here.
  const kit = await import(kitUrl);
  const tool = kit.devmapperDevicesTool({ build: true });
  if (!tool.bin) console.log(`snapshotter bench: ${tool.why}`);
  console.log('snapshotter bench: no device-mapper here; booting the dmvm guest once');
  await new Promise((resolve, reject) => {
    const child = spawn(vm, [process.execPath, path.join('bench', 'snapshotter.mjs'), ...args], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, DMVM_MEM: process.env.DMVM_MEM || '2048' },
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`snapshotter bench in the guest exited ${code}`))));
  });
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  await snapshotterBench(process.argv.slice(2));
}
