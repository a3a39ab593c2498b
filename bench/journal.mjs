// pnpm bench journal — durable append throughput against this disk's fdatasync floor, measured in one run.
import { openSync, writeSync, fdatasyncSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClassicLevel } from '../packages/journal/node_modules/classic-level/index.js';
import { Journal } from '../packages/journal/dist/src/index.js';
import { encodeRecord, sha256, GENESIS_PREV } from '../packages/spec/dist/src/index.js';

const event = (i) => ({ type: 'SnapshotCreated', txId: i + 1, body: { hash: `layer-${i.toString(16).padStart(12, '0')}`, deviceId: i % 16_000_000, parentHash: 'base', parentDeviceId: 1, size: 10 * 2 ** 30 } });

function fdatasyncFloor(dir, n) {
  const fd = openSync(path.join(dir, 'floor'), 'w');
  const rec = Buffer.alloc(256, 0x5a);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) { writeSync(fd, rec); fdatasyncSync(fd); }
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  closeSync(fd);
  return n / s;
}

async function levelPuts(dir, n) {
  const db = new ClassicLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  const v = Buffer.alloc(200, 0x5a);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await db.put('r' + i.toString(16).padStart(16, '0'), v, { sync: true });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  await db.close();
  return n / s;
}

async function appends(dir, n, inFlight) {
  const j = await Journal.open(dir);
  let next = 0;
  const t = process.hrtime.bigint();
  async function lane() { while (next < n) { const i = next++; await j.append([event(i)]); } }
  await Promise.all(Array.from({ length: inFlight }, lane));
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  const commits = j.commits;
  await j.close();
  return { rate: n / s, commits };
}

function encodeCost(n) {
  let prev = Buffer.from(GENESIS_PREV);
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const e = event(i);
    const b = encodeRecord({ seq: i + 1, txId: e.txId, ts: 1764000000000 + i, type: e.type, actor: 'bench', reason: '', body: e.body, prev });
    prev = sha256(b);
  }
  return Number(process.hrtime.bigint() - t) / 1e3 / n; // µs per record
}

export default async function main() {
  const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-bench-'));
  try {
    const N = Number(process.env.BENCH_N || 2000);
    const floor = fdatasyncFloor(base, N);
    const lvl = await levelPuts(path.join(base, 'lvl'), N);
    const seq = await appends(path.join(base, 'seq'), N, 1);
    const p8 = await appends(path.join(base, 'p8'), N * 4, 8);
    const p64 = await appends(path.join(base, 'p64'), N * 16, 64);
    const enc = encodeCost(100_000);
    const row = (name, rate, extra = '') => console.log(`${name.padEnd(36)} ${Math.round(rate).toString().padStart(9)} /s  ${(rate / floor).toFixed(2).padStart(6)}× floor  ${extra}`);
    console.log(`journal benchmark (N=${N}; same disk, same run; ratios are what to compare)`);
    row('raw write+fdatasync, 256 B (floor)', floor);
    row('LevelDB put {sync:true}, sequential', lvl);
    row('durable append, sequential', seq.rate, `${(seq.rate / lvl).toFixed(2)}× LevelDB put, ${(seq.commits / N).toFixed(2)} syncs/append`);
    row('durable append, 8 in flight', p8.rate, `${(p8.rate / seq.rate).toFixed(1)}× sequential, ${(p8.commits / (N * 4)).toFixed(3)} syncs/append`);
    row('durable append, 64 in flight', p64.rate, `${(p64.rate / seq.rate).toFixed(1)}× sequential, ${(p64.commits / (N * 16)).toFixed(3)} syncs/append`);
    console.log(`${'msgpack encode + SHA-256 per record'.padEnd(36)} ${enc.toFixed(2).padStart(9)} µs`);
    console.log(`targets: sequential ≥ 0.8× floor → ${(seq.rate / floor).toFixed(2)}×; 64 in flight ≥ 20× sequential → ${(p64.rate / seq.rate).toFixed(1)}×`);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}
