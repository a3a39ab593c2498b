// pnpm bench model — replay (decode + evolve) of 1,000,000 journal events from disk, beside the decode-only
// rate measured in the same run (the ceiling), and peak RSS of a process holding 100,000 devices' state.
//
// The journal is written once per run into a temporary directory: 100,000 devices created through addDevice
// transactions (TransactionBegan + SnapshotCreated + TransactionCommitted), Docker-like 64-hex hashes, every
// tenth a snapshot of the base and the rest of the device before it, interleaved with activate / mount /
// unmount / deactivate cycles until the journal holds exactly N events. Events are produced by the model's
// own decide (on a Projection, via peek), so the journal is one the model accepts.
//
// Targets (issue 3): replay ≥ 1,000,000 events/s and ≥ 0.5× decode-only; peak RSS for 100k devices ≤ 200 MiB.
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Journal } from '../packages/journal/dist/src/index.js';
import { decide, Projection, stateHash, parseOptions, effectiveOptions } from '../packages/model/dist/src/index.js';

const here = fileURLToPath(import.meta.url);
const MiB = 1024 * 1024;
const fmt = (n) => Math.round(n).toLocaleString('en-US');

function hashOf(i) {
  return createHash('sha256').update(`layer-${i}`).digest('hex');
}

/** Writes the workload: exactly `total` events, `devices` devices. Returns the final state hash. */
async function writeJournal(dir, total, devices) {
  const j = await Journal.open(dir, { actor: 'bench', clock: () => 1764000000000 });
  const p = new Projection();
  let batch = [];
  let count = 0;
  const flush = async () => { if (batch.length) { await j.append(batch); batch = []; } };
  const emit = async (events) => {
    p.applyAll(events);
    for (const e of events) batch.push(e);
    count += events.length;
    if (batch.length >= 4096) await flush();
  };
  const run = (cmd) => p.peek((s) => decide(s, cmd));
  // A mutating command's intent followed by its commit record (the reconciler's outcome, here always success).
  const committed = (cmd) => { const ev = run(cmd); return [...ev, { type: 'TransactionCommitted', txId: ev[0].txId, body: {} }]; };
  const o = parseOptions([]);
  await emit(run({ type: 'initPool', poolName: 'docker-8:1-1234-pool', dataDevice: '/dev/loop0', metadataDevice: '/dev/loop1', loopback: true,
    dataSize: o.loopDataSize, metadataSize: o.loopMetadataSize, blockSize: o.blockSize, options: effectiveOptions(o) }));
  await emit(committed({ type: 'createBaseImage', size: o.baseSize, fs: 'xfs', uuid: '6f1c2a5e-1b8e-4c61-9a49-2f8f9ad3c0b7' }));
  const hashes = [];
  const lifecycleBudget = total - count - devices * 3;
  if (lifecycleBudget < 0) throw new Error('too few events for that many devices');
  const cycles = Math.floor(lifecycleBudget / 4);
  let cyclesDone = 0;
  let rnd = 12345;
  const next = () => (rnd = (rnd * 1103515245 + 12345) >>> 0);
  for (let i = 0; i < devices; i++) {
    const hash = hashOf(i);
    const parent = i % 10 === 0 ? '' : hashes[i - 1];
    await emit(committed({ type: 'addDevice', hash, baseHash: parent }));
    hashes.push(hash);
    // spread the lifecycle cycles evenly over device creation
    const due = Math.floor(((i + 1) * cycles) / devices);
    for (; cyclesDone < due; cyclesDone++) {
      const h = hashes[next() % hashes.length];
      const mnt = `/var/lib/thinjournal/mnt/${h}`;
      await emit(run({ type: 'mountDevice', hash: h, path: mnt })); // DeviceActivated + DeviceMounted
      await emit(run({ type: 'unmountDevice', hash: h, path: mnt })); // DeviceUnmounted + DeviceDeactivated
    }
  }
  // pad to exactly `total`: activate/deactivate pairs, and a Checkpoint record if one event is left
  while (count < total) {
    const h = hashes[next() % hashes.length];
    if (total - count >= 2) {
      await emit(run({ type: 'activateDevice', hash: h }));
      await emit(run({ type: 'deactivateDevice', hash: h }));
    } else {
      await emit([{ type: 'Checkpoint', txId: p.peek((s) => s.txId), body: { atSeq: count, stateHash: '0'.repeat(64) } }]);
    }
  }
  await flush();
  const head = j.head();
  await j.close();
  return { events: head.seq, hash: stateHash(p.state) };
}

async function decodeOnly(dir) {
  const j = await Journal.open(dir, { readOnly: true });
  let n = 0;
  const t = process.hrtime.bigint();
  await j.forEach(() => { n++; });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  await j.close();
  return { n, s };
}

async function replayAll(dir) {
  const j = await Journal.open(dir, { readOnly: true });
  const p = new Projection();
  const t = process.hrtime.bigint();
  const n = await j.forEach((rec) => p.apply(rec));
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  await j.close();
  return { n, s, state: p.state };
}

/** Child mode: replay the journal (or only decode it) and report peak RSS. */
/** RssAnon and RssFile (bytes) from /proc/self/status: anonymous memory vs file pages mapped in (LevelDB mmaps its tables). */
function rssParts() {
  const st = readFileSync('/proc/self/status', 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(st) ?? [0, 0])[1]) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile') };
}

async function child(dir, mode) {
  let devices = 0;
  let peakAnon = 0;
  const sample = setInterval(() => { peakAnon = Math.max(peakAnon, rssParts().anon); }, 20);
  if (mode === 'replay') devices = (await replayAll(dir)).state.devices.size;
  else await decodeOnly(dir);
  clearInterval(sample);
  peakAnon = Math.max(peakAnon, rssParts().anon);
  globalThis.gc?.();
  const mu = process.memoryUsage();
  process.stdout.write(JSON.stringify({ maxRss: process.resourceUsage().maxRSS * 1024, peakAnon, file: rssParts().file, rss: mu.rss, heapUsed: mu.heapUsed, devices }) + '\n');
}

function measureChild(dir, mode) {
  const r = spawnSync(process.execPath, ['--expose-gc', here, '--child', dir, mode], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`child ${mode} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

export default async function main() {
  const TOTAL = Number(process.env.BENCH_EVENTS || 1_000_000);
  const DEVICES = Number(process.env.BENCH_DEVICES || 100_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-bench-model-'));
  try {
    const tw = process.hrtime.bigint();
    const written = await writeJournal(dir, TOTAL, DEVICES);
    console.log(`model: wrote ${fmt(written.events)} events (${fmt(DEVICES)} devices) in ${(Number(process.hrtime.bigint() - tw) / 1e9).toFixed(1)} s`);

    // Alternate the two measurements; report the best of three of each (least disturbed by the machine).
    let best = { decode: Infinity, replay: Infinity };
    let replayed;
    for (let round = 0; round < 3; round++) {
      const d = await decodeOnly(dir);
      if (d.n !== written.events) throw new Error(`decoded ${d.n} of ${written.events}`);
      best.decode = Math.min(best.decode, d.s);
      const r = await replayAll(dir);
      if (r.n !== written.events) throw new Error(`replayed ${r.n} of ${written.events}`);
      best.replay = Math.min(best.replay, r.s);
      replayed = r.state;
    }
    const same = stateHash(replayed) === written.hash;
    const decodeRate = written.events / best.decode;
    const replayRate = written.events / best.replay;
    const ratio = replayRate / decodeRate;
    console.log(`  decode-only (journal forEach, msgpack + validation): ${fmt(decodeRate)} events/s`);
    console.log(`  replay (decode + Projection.apply):                  ${fmt(replayRate)} events/s   ${ratio.toFixed(2)}× decode-only`);
    console.log(`  evolve share: ${(((best.replay - best.decode) / written.events) * 1e9).toFixed(0)} ns/event; final state: ${fmt(replayed.devices.size)} devices, txId ${replayed.txId}, hash ${same ? 'matches' : 'DIFFERS from'} the writer's`);

    const withState = measureChild(dir, 'replay');
    const without = measureChild(dir, 'decode');
    console.log(`  peak RSS, replaying into ${fmt(withState.devices)} devices' state: ${(withState.maxRss / MiB).toFixed(0)} MiB (heap in use after: ${(withState.heapUsed / MiB).toFixed(0)} MiB; peak anonymous ${(withState.peakAnon / MiB).toFixed(0)} MiB, LevelDB's mmapped table files ${(withState.file / MiB).toFixed(0)} MiB)`);
    console.log(`  peak RSS, decode only (no state):                     ${(without.maxRss / MiB).toFixed(0)} MiB (heap in use after: ${(without.heapUsed / MiB).toFixed(0)} MiB; peak anonymous ${(without.peakAnon / MiB).toFixed(0)} MiB)`);
    const verdict = (ok) => (ok ? 'met' : 'MISSED');
    console.log(`  targets: replay ≥ 1,000,000 events/s ${verdict(replayRate >= 1e6)}; ≥ 0.5× decode-only ${verdict(ratio >= 0.5)}; peak RSS ≤ 200 MiB ${verdict(withState.maxRss <= 200 * MiB)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') await child(process.argv[3], process.argv[4]);
// `node bench/model.mjs --write <dir> <events> <devices>` leaves a workload journal behind (for profiling).
if (process.argv[2] === '--write') { const r = await writeJournal(process.argv[3], Number(process.argv[4]), Number(process.argv[5])); console.log(r); }
