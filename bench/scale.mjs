// pnpm bench scale — driver operation latency against the number of live devices, on the model backend.
//
// For each size (default 10³, 10⁴, 10⁵ live devices) a device set is created in a temporary home (loopback
// pool and base image on a ModelBackend), closed, and grown to the size quickly: the live devices are
// journaled as committed addDevice transactions straight into its journal (decided by the model on a
// Projection) and created in the model pool with its transaction id moved to match, as after a clean
// shutdown. The device set is then opened again (Engine.open replays the journal; its recovery finds the
// kernel in sync) and timed: addDevice (a snapshot of the base), mountDevice (activate + mount),
// unmountDevice, status and deleteDevice (synchronous), each a few hundred times, interleaved.
//
// Target (issue 13, 1): every operation's median at 10⁵ live devices within 1.5× of its median at 10³,
// measured in the same run. The device set keeps its default checkpoint interval (1,000 records), so the
// p90 and max columns show what a checkpoint costs at that size.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Journal } from '../packages/journal/dist/src/index.js';
import { Projection, decide } from '../packages/model/dist/src/index.js';
import { ModelBackend } from '../packages/dm/dist/src/index.js';
import { loadState } from '../packages/reconciler/dist/src/index.js';
import { DeviceSet } from '../packages/driver/dist/src/index.js';

const hashOf = (i) => createHash('sha256').update(`scale-${i}`).digest('hex');

/** Grows the device set's journal and its model pool to `n` live devices besides the base image. */
async function grow(home, backend, n) {
  const j = await Journal.open(path.join(home, 'journal'));
  const p = new Projection(await loadState(j));
  const pool = p.peek((s) => s.pool.poolName);
  const tx0 = p.peek((s) => s.txId);
  let buf = [];
  const flush = async () => { if (buf.length) { await j.append(buf); buf = []; } };
  for (let i = 0; i < n; i++) {
    const evs = p.peek((s) => decide(s, { type: 'addDevice', hash: hashOf(i), baseHash: i % 10 === 0 ? '' : hashOf(i - 1) }));
    const all = [...evs, { type: 'TransactionCommitted', txId: evs[0].txId, body: {} }];
    for (const e of all) p.apply(e);
    for (const e of all) buf.push({ ...e, actor: 'bench' });
    for (const e of evs) if (e.type === 'SnapshotCreated') await backend.createThin(pool, e.body.deviceId);
    if (buf.length >= 6000) await flush();
  }
  await flush();
  await backend.setTransactionId(pool, tx0, p.peek((s) => s.txId));
  await j.close();
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (f) => s[Math.min(s.length - 1, Math.floor(f * s.length))];
  return { median: q(0.5), p90: q(0.9), max: s[s.length - 1] };
}

async function measure(n, reps) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-bench-scale-'));
  const home = path.join(root, 'home');
  try {
    const backend = new ModelBackend();
    const t0 = Date.now();
    let ds = await DeviceSet.open(home, [], { backend, workers: false });
    await ds.close();
    await grow(home, backend, n);
    const tOpen = Date.now();
    ds = await DeviceSet.open(home, [], { backend, workers: false });
    const openMs = Date.now() - tOpen;
    const buildS = (Date.now() - t0) / 1000;
    const times = { addDevice: [], mountDevice: [], unmountDevice: [], status: [], deleteDevice: [] };
    const timed = async (name, fn) => {
      const t = process.hrtime.bigint();
      await fn();
      times[name].push(Number(process.hrtime.bigint() - t) / 1e6);
    };
    const mnt = path.join(home, 'mnt');
    for (let i = 0; i < reps; i++) {
      const h = `bench-${i}`;
      const mp = path.join(mnt, h);
      mkdirSync(mp, { recursive: true });
      await timed('addDevice', () => ds.addDevice(h, ''));
      await timed('mountDevice', () => ds.mountDevice(h, mp));
      await timed('status', () => ds.status());
      await timed('unmountDevice', () => ds.unmountDevice(h, mp));
      await timed('deleteDevice', () => ds.deleteDevice(h, true));
    }
    const live = ds.list().length;
    await ds.close();
    return { n, live, buildS, openMs, stats: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stats(v.slice(Math.min(20, v.length >> 2)))])) };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export default async function main() {
  const sizes = (process.env.BENCH_SIZES || '1000,10000,100000').split(',').map(Number);
  const reps = Number(process.env.BENCH_REPS || 300);
  console.log(`scale benchmark: DeviceSet on the model backend; ${reps} rounds of add/mount/status/unmount/delete per size (the first 20 dropped as warm-up); ms`);
  const rows = [];
  for (const n of sizes) {
    const r = await measure(n, reps);
    rows.push(r);
    console.log(`  ${n.toLocaleString('en-US')} live devices (built in ${r.buildS.toFixed(1)} s, device set open ${r.openMs} ms, ${r.live.toLocaleString('en-US')} listed):`);
    for (const [op, s] of Object.entries(r.stats)) {
      console.log(`    ${op.padEnd(14)} median ${s.median.toFixed(2).padStart(8)}  p90 ${s.p90.toFixed(2).padStart(8)}  max ${s.max.toFixed(1).padStart(8)}`);
    }
  }
  if (rows.length >= 2) {
    const lo = rows[0], hi = rows[rows.length - 1];
    console.log(`  median ratio ${hi.n.toLocaleString('en-US')} / ${lo.n.toLocaleString('en-US')} live devices (target ≤ 1.5×):`);
    for (const op of Object.keys(lo.stats)) {
      const ratio = hi.stats[op].median / lo.stats[op].median;
      console.log(`    ${op.padEnd(14)} ${ratio.toFixed(2)}×  ${ratio <= 1.5 ? 'met' : 'MISSED'}`);
    }
  }
}
