// pnpm bench kernel — the native device-mapper path (KernelBackend → @thinjournal/native ioctls) against the
// same steps as `dmsetup` processes (how containerd's devmapper snapshotter drives dm), measured in one run
// on one pool:
//   cycle: create_thin → activate (create+load+resume) → deactivate (remove) → delete
//   snap:  suspend origin → create_snap → resume origin (create_snap of an active origin)
// N iterations each (default 200; BENCH_N=50 pnpm bench kernel, or node bench/kernel.mjs --n=50). Prints per-op medians and the ratio.
// Needs a real device-mapper: on a machine without one it boots the dmvm guest once and runs there. In the
// emulated guest absolute timings are meaningless (software CPU emulation, ~20x slower); compare ratios.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const run = promisify(execFile);

async function direct() {
  // The device-mapper must answer (a /dev/mapper/control node alone proves nothing).
  const { probeDeviceMapper } = await import(pathToFileURL(path.join(root, 'packages/dm/dist/src/index.js')).href);
  return probeDeviceMapper().available && process.getuid?.() === 0;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => `${x.toFixed(x < 10 ? 2 : 1)} ms`;

async function timed(samples, key, fn) {
  const t = performance.now();
  await fn();
  (samples[key] ??= []).push(performance.now() - t);
}

async function bench(args) {
  const n = Number((args.find((a) => a.startsWith('--n=')) ?? `--n=${process.env.BENCH_N || 200}`).slice(4));
  const { KernelBackend } = await import(pathToFileURL(path.join(root, 'packages/dm/dist/src/index.js')).href);
  const b = new KernelBackend();
  const env = { ...process.env, DM_DISABLE_UDEV: '1' };
  const dmsetup = (...a) => run('dmsetup', a, { env });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tjbench-'));
  const pool = `tjbench${process.pid}-pool`;
  const created = [];
  try {
    const mk = async (name, bytes) => {
      const p = path.join(dir, name);
      await writeFile(p, '');
      await truncate(p, bytes);
      return p;
    };
    const meta = await b.attachLoop(await mk('meta', 64 << 20));
    const data = await b.attachLoop(await mk('data', 256 << 20));
    await b.zeroRange(meta, 0, 4096);
    const sectors = (await b.blockDeviceSize(data)) / 512;
    await b.createPool(pool, { metadataDevice: meta, dataDevice: data, lengthSectors: sectors, dataBlockSectors: 128, lowWaterMarkBlocks: 64 });
    created.push(pool);
    const poolDev = b.devicePath(pool);
    const thinLen = 2048 * 16;
    const v = await b.version();
    console.log(`kernel bench: dm ${v.major}.${v.minor}.${v.patch}, N=${n}, ${os.cpus().length} cpu(s)${process.env.DMVM_GUEST ? ', dmvm guest (emulated: compare ratios only)' : ''}`);

    // An origin for the snapshot rounds, active the whole time.
    await b.createThin(pool, 1);
    const origin = `tjbench${process.pid}-origin`;
    await b.activateThin(origin, { poolDevice: poolDev, id: 1, lengthSectors: thinLen });
    created.push(origin);

    const native = {}, procs = {};
    let id = 100;
    const thin = `tjbench${process.pid}-thin`;
    const warm = Math.min(5, n);
    for (let i = 0; i < n + warm; i++) {
      const s = i < warm ? {} : native;
      const a = id++;
      await timed(s, 'create_thin', () => b.createThin(pool, a));
      await timed(s, 'activate', () => b.activateThin(thin, { poolDevice: poolDev, id: a, lengthSectors: thinLen }));
      await timed(s, 'deactivate', () => b.remove(thin));
      await timed(s, 'delete', () => b.deleteThin(pool, a));
      const snapId = id++;
      await timed(s, 'snapshot (suspend+create_snap+resume)', () => b.snapshotActive(pool, snapId, 1, origin));
      await b.deleteThin(pool, snapId);
    }
    for (let i = 0; i < n + warm; i++) {
      const s = i < warm ? {} : procs;
      const a = id++;
      await timed(s, 'create_thin', () => dmsetup('message', pool, '0', `create_thin ${a}`));
      await timed(s, 'activate', () => dmsetup('create', thin, '--table', `0 ${thinLen} thin ${poolDev} ${a}`));
      await timed(s, 'deactivate', () => dmsetup('remove', thin));
      await timed(s, 'delete', () => dmsetup('message', pool, '0', `delete ${a}`));
      const snapId = id++;
      await timed(s, 'snapshot (suspend+create_snap+resume)', async () => {
        await dmsetup('suspend', origin);
        try {
          await dmsetup('message', pool, '0', `create_snap ${snapId} 1`);
        } finally {
          await dmsetup('resume', origin);
        }
      });
      await dmsetup('message', pool, '0', `delete ${snapId}`);
    }
    const cycle = (s) => s.create_thin.map((_, i) => s.create_thin[i] + s.activate[i] + s.deactivate[i] + s.delete[i]);
    native['cycle (4 ops)'] = cycle(native);
    procs['cycle (4 ops)'] = cycle(procs);
    const rows = Object.keys(native).map((k) => [k, median(native[k]), median(procs[k])]);
    const w = Math.max(...rows.map((r) => r[0].length));
    console.log(`\n${'operation'.padEnd(w)}  ${'native (median)'.padStart(16)}  ${'dmsetup (median)'.padStart(16)}  ratio`);
    for (const [k, a, d] of rows) console.log(`${k.padEnd(w)}  ${ms(a).padStart(16)}  ${ms(d).padStart(16)}  ${(d / a).toFixed(1)}x`);
    const [, ca, cd] = rows.find((r) => r[0] === 'cycle (4 ops)');
    const [, sa, sd] = rows.find((r) => r[0].startsWith('snapshot'));
    const ok = cd / ca >= 5 && sd / sa >= 5;
    console.log(`\ntarget >= 5x faster than dmsetup processes: cycle ${(cd / ca).toFixed(1)}x, snapshot ${(sd / sa).toFixed(1)}x — ${ok ? 'met' : 'NOT met'}`);
  } finally {
    for (const name of [...created].reverse()) await b.remove(name).catch(() => {});
    await b.remove(`tjbench${process.pid}-thin`).catch(() => {});
    for (const f of ['meta', 'data']) {
      const { stdout } = await run('losetup', ['-j', path.join(dir, f)]).catch(() => ({ stdout: '' }));
      for (const line of stdout.split('\n')) if (line) await b.detachLoop(line.split(':')[0]).catch(() => {});
    }
    await rm(dir, { recursive: true, force: true });
  }
}

export default async function kernelBench(args = []) {
  if (await direct()) return bench(args);
  const vm = path.resolve(root, '..', 'shared', 'dmvm', 'run-in-vm.sh');
  if (!existsSync(vm)) {
    console.log('kernel bench skipped: no working device-mapper here (or not root) and no ../shared/dmvm guest');
    return;
  }
  console.log('kernel bench: no device-mapper here; booting the dmvm guest once');
  await new Promise((resolve, reject) => {
    const child = spawn(vm, [process.execPath, path.join('bench', 'kernel.mjs'), ...args], { cwd: root, stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`kernel bench in the guest exited ${code}`))));
  });
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  await kernelBench(process.argv.slice(2));
}
