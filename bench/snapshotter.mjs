// pnpm bench snapshotter — thinjournal's snapshotter daemon against containerd's built-in devmapper
// snapshotter (io.containerd.snapshotter.v1.devmapper, on its own loopback thin pool made with dmsetup), both
// behind one containerd in one run, both driven the same way: `ctr snapshots --snapshotter S prepare|commit|rm`
// (ctr → containerd's gRPC API → containerd's metadata layer → the snapshotter: in-process for devmapper,
// the proxy plugin's gRPC socket for thinjournal). Every figure therefore includes a ctr process start and
// containerd's own work, the same for both; the `ctr version` line shows that fixed part.
//   cycle:      prepare K (parent: a committed base) → commit C K → rm C         N times (BENCH_N, default 20)
//   chain:      prepare/commit 20 layers, each the parent of the next; then rm them top down
//   concurrent: 64 prepares at once on the committed base (64 ctr processes); then rm them
// Prints per-phase figures and the ratio thinjournal/devmapper (above 1: thinjournal faster). Needs a real
// device-mapper: on a machine without one it boots the dmvm guest once (DMVM_MEM=2048) and runs there; under
// that guest's software emulation absolute times mean little, compare ratios. With no thinjournal daemon on
// this branch (packages/snapshotter/bin/spawn-for-suite.sh and `thinjournal snapshotter`), it prints
// devmapper's figures alone and says thinjournal was not measured.
//   node bench/snapshotter.mjs [--n=20] [--chain=20] [--concurrent=64]
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
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
  const pool = await kit.makeThinPool(path.join(dir, 'pool'), `tjbench${process.pid}-pool`, { dataBytes: 4 * 2 ** 30 });
  let daemon = null;
  let ctd = null;
  const home = path.join(dir, 'tjhome');
  try {
    const proxy = {};
    if (svc.ok) {
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

export default async function snapshotterBench(args = []) {
  if (await direct()) return bench(args);
  const vm = path.resolve(root, '..', 'shared', 'dmvm', 'run-in-vm.sh');
  if (!existsSync(vm)) {
    console.log('snapshotter bench skipped: no working device-mapper here (or not root) and no ../shared/dmvm guest');
    return;
  }
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
