// pnpm bench recovery — recovery time (open + latest checkpoint + tail replay + plan) against history length,
// on the model backend; and journal syncs per operation with 64 operations issued at once.
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Journal, checkStore } from '../packages/journal/dist/src/index.js';
import { Projection, decide, stateHash, toPlain } from '../packages/model/dist/src/index.js';
import { ModelBackend } from '../packages/dm/dist/src/index.js';
import { Engine } from '../packages/reconciler/dist/src/index.js';

const G = 2 ** 30, M = 2 ** 20;
const POOL = { type: 'initPool', poolName: 'bench', devicePrefix: 'bench', dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', loopback: false, dataSize: 64 * G, metadataSize: 256 * M, blockSize: 65536 };

/**
 * Writes a journal of ~n events (create/snapshot/delete churn, ≤ `live` live devices), with a checkpoint
 * every max(`every`, live devices) events — the Engine's spacing (a checkpoint costs O(devices)).
 */
async function build(dir, n, every, live = 1000) {
  const j = await Journal.open(dir);
  const p = new Projection();
  let buf = [];
  let sinceCp = 0;
  let written = 0;
  let k = 0;
  let del = 0;
  const flush = async () => { if (buf.length) { await j.append(buf); written += buf.length; buf = []; } };
  const run = (cmd) => {
    const evs = p.peek((s) => decide(s, cmd));
    const all = evs.length && evs[0].type === 'TransactionBegan' ? [...evs, { type: 'TransactionCommitted', txId: evs[0].txId, body: {} }] : evs;
    for (const e of all) p.apply(e);
    buf.push(...all);
    sinceCp += all.length;
  };
  run(POOL);
  run({ type: 'createBaseImage', size: G, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' });
  run({ type: 'addDevice', hash: 'layer', baseHash: '' });
  while (written + buf.length < n) {
    if (k - del >= live) run({ type: 'deleteDevice', hash: `d${del++}`, syncDelete: true });
    run({ type: 'addDevice', hash: `d${k}`, baseHash: k % 2 ? 'layer' : '' });
    k++;
    if (buf.length >= 3000) await flush();
    if (every && sinceCp >= Math.max(every, p.peek((s) => s.devices.size))) {
      await flush();
      await j.putCheckpoint(j.head().seq, toPlain(p.state), stateHash(p.state));
      sinceCp = 0;
    }
  }
  await flush();
  await j.close();
  return p.state;
}

/** The kernel side: a model pool that matches the state (as after a clean shutdown). */
async function kernelFor(state) {
  const b = new ModelBackend();
  b.addDisk('/dev/vdm', 256 * M);
  b.addDisk('/dev/vdd', 64 * G);
  await b.zeroRange('/dev/vdm', 0, 4096);
  const { poolTableSpec } = await import('../packages/reconciler/dist/src/index.js');
  await b.createPool('bench', poolTableSpec({ dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', dataSize: 64 * G, blockSize: 65536 }));
  for (const d of state.devices.values()) await b.createThin('bench', d.deviceId);
  await b.setTransactionId('bench', 0, state.txId);
  return b;
}

async function timeRecovery(dir, backend) {
  const t0 = process.hrtime.bigint();
  const j = await Journal.open(dir);
  const e = await Engine.open(j, backend);
  const t1 = process.hrtime.bigint();
  const r = await e.recover({ dryRun: true });
  const t2 = process.hrtime.bigint();
  await j.close();
  return { open: Number(t1 - t0) / 1e6, plan: Number(t2 - t1) / 1e6, verdict: r.plan.verdict };
}

/** The checks of LevelDB's own files a writer (footer) and a reader (every block) run before LevelDB opens. */
function timeStoreCheck(dir) {
  const bytes = readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
  const time = (tables) => {
    const t0 = process.hrtime.bigint();
    const r = checkStore(dir, { tables });
    if (r.problems.length) throw new Error(`store check found damage in a fresh journal: ${r.problems[0].message}`);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  return { bytes, footer: time('footer'), full: time('full') };
}

async function timeReaderOpen(dir) {
  const t0 = process.hrtime.bigint();
  const j = await Journal.openReader(dir);
  const t1 = process.hrtime.bigint();
  await j.close();
  return Number(t1 - t0) / 1e6;
}

async function syncsPerOp() {
  const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-bench-syncs-'));
  try {
    const b = new ModelBackend();
    b.addDisk('/dev/vdm', 256 * M);
    b.addDisk('/dev/vdd', 64 * G);
    const j = await Journal.open(path.join(base, 'j'));
    const e = await Engine.open(j, b);
    await e.execute(POOL);
    await e.execute({ type: 'createBaseImage', size: G, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' });
    const before = j.syncs;
    const N = 64;
    await Promise.all(Array.from({ length: N }, (_, i) => e.execute({ type: 'addDevice', hash: `c${i}`, baseHash: '' })));
    const s = (j.syncs - before) / N;
    await j.close();
    return s;
  } finally { rmSync(base, { recursive: true, force: true }); }
}

export default async function main() {
  const sizes = (process.env.BENCH_SIZES || '1000,10000,100000,1000000').split(',').map(Number);
  const every = Number(process.env.BENCH_CHECKPOINT_EVERY || 10000);
  console.log(`recovery benchmark: model backend; checkpoint every max(${every}, live devices) events; times in ms (open = journal open + checkpoint + tail replay; plan = kernel read + planRecovery)`);
  console.log("  (the open includes the writer's check of LevelDB's files — log and manifest records, every table block — and the");
  console.log('   chain walk from the latest checkpoint; store footer/full = that check alone, and a reader\'s every-block check;');
  console.log('   reader = Journal.openReader: private copy + full check + LevelDB open)');
  console.log(`${'events'.padStart(9)} ${'devices'.padStart(7)} ${'build s'.padStart(8)} ${'open'.padStart(8)} ${'plan'.padStart(8)} ${'total'.padStart(8)}  ${'no-ckpt open'.padStart(12)}  ${'MiB'.padStart(6)} ${'footer'.padStart(7)} ${'full'.padStart(7)} ${'reader'.padStart(7)}  verdict`);
  // rows: events, or events:live for a row with that many live devices (default: ≤ 1,000)
  const liveRows = (process.env.BENCH_LIVE_ROWS ?? '1000000:100000').split(',').filter(Boolean);
  for (const row of [...sizes.map(String), ...liveRows]) {
    const [n, live] = row.split(':').map(Number);
    const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-bench-rec-'));
    try {
      const t = Date.now();
      const state = await build(path.join(base, 'j'), n, every, live || 1000);
      const buildS = (Date.now() - t) / 1000;
      const backend = await kernelFor(state);
      await timeRecovery(path.join(base, 'j'), backend); // warm the page cache once
      const r = await timeRecovery(path.join(base, 'j'), backend);
      let noCk = '';
      if (n <= 100000) {
        await build(path.join(base, 'k'), n, 0, live || 1000);
        const q = await timeRecovery(path.join(base, 'k'), backend);
        noCk = q.open.toFixed(0);
      }
      const st = timeStoreCheck(path.join(base, 'j'));
      const reader = await timeReaderOpen(path.join(base, 'j'));
      console.log(`${String(n).padStart(9)} ${String(state.devices.size).padStart(7)} ${buildS.toFixed(1).padStart(8)} ${r.open.toFixed(0).padStart(8)} ${r.plan.toFixed(0).padStart(8)} ${(r.open + r.plan).toFixed(0).padStart(8)}  ${noCk.padStart(12)}  ${(st.bytes / 2 ** 20).toFixed(1).padStart(6)} ${st.footer.toFixed(1).padStart(7)} ${st.full.toFixed(1).padStart(7)} ${reader.toFixed(0).padStart(7)}  ${r.verdict}`);
    } finally { rmSync(base, { recursive: true, force: true }); }
  }
  const s = await syncsPerOp();
  console.log(`journal syncs per operation, 64 addDevice issued at once: ${s.toFixed(2)} (target ≤ 1.0)`);
}
