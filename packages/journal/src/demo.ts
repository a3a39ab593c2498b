#!/usr/bin/env node
/**
 * README command 1 until the driver exists: runs a container-runtime-like session against a journal in a
 * temporary home, SIGKILLs a writer mid-operation, reopens, verifies the chain and prints the audit trail.
 * No device-mapper is touched: this exercises the journal only (the driver issue replaces this demo).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JournalEvent } from '@thinjournal/spec';
import { Journal } from './journal.js';

const G = 2 ** 30;

async function session(dir: string): Promise<void> {
  const j = await Journal.open(dir, { actor: 'demo' });
  let tx = 0;
  const op = async (name: string, hash: string | undefined, events: JournalEvent[]) => {
    tx++;
    const began: JournalEvent = { type: 'TransactionBegan', txId: tx, body: hash === undefined ? { op: name } : { op: name, hash } };
    await j.append([began, ...events.map((e) => ({ ...e, txId: tx }))]); // intent, durable before any kernel step
    await j.append([{ type: 'TransactionCommitted', txId: tx, body: {} }]); // outcome
  };
  await op('initPool', undefined, [{ type: 'PoolInitialised', txId: 0, body: { poolName: 'thinjournal-demo-pool', dataDevice: 'data.img', metadataDevice: 'metadata.img', loopback: true, dataSize: 100 * G, metadataSize: 2 * G, blockSize: 65536, options: { 'dm.basesize': '10G', 'dm.fs': 'ext4' } } }]);
  await op('createBaseImage', '', [{ type: 'BaseImageCreated', txId: 0, body: { hash: '', deviceId: 1, size: 10 * G, fs: 'ext4', uuid: '0b6f4c1e-7d0a-4d55-9b1e-3c2f6a9e8d10' } }]);
  await op('addDevice', 'layer-a', [{ type: 'SnapshotCreated', txId: 0, body: { hash: 'layer-a', deviceId: 2, parentHash: '', parentDeviceId: 1, size: 10 * G } }]);
  await op('addDevice', 'layer-b', [{ type: 'SnapshotCreated', txId: 0, body: { hash: 'layer-b', deviceId: 3, parentHash: 'layer-a', parentDeviceId: 2, size: 10 * G } }]);
  await op('addDevice', 'container-1', [{ type: 'SnapshotCreated', txId: 0, body: { hash: 'container-1', deviceId: 4, parentHash: 'layer-b', parentDeviceId: 3, size: 20 * G } }]);
  await j.append([
    { type: 'DeviceActivated', txId: tx, body: { hash: 'container-1', deviceId: 4, name: 'thinjournal-demo-container-1', size: 20 * G } },
    { type: 'DeviceMounted', txId: tx, body: { hash: 'container-1', path: path.join(dir, '..', 'mnt', 'container-1') } },
  ]);
  // A writer that dies mid-operation: its intent is durable, its outcome never written.
  await j.close();
}

async function crashingWriter(dir: string): Promise<void> {
  const j = await Journal.open(dir, { actor: 'demo-crasher' });
  const tx = j.head().seq ? (await j.read({ fromSeq: j.head().seq }))[0]!.txId + 1 : 1;
  await j.append([
    { type: 'TransactionBegan', txId: tx, body: { op: 'addDevice', hash: 'container-2' } },
    { type: 'SnapshotCreated', txId: tx, body: { hash: 'container-2', deviceId: 5, parentHash: 'layer-b', parentDeviceId: 3, size: 10 * G } },
  ]);
  process.stdout.write('intent durable; crashing now\n');
  process.kill(process.pid, 'SIGKILL');
}

async function main(): Promise<void> {
  if (process.argv[2] === '--crash') return crashingWriter(process.argv[3]!);
  const home = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-demo-'));
  const dir = path.join(home, 'journal');
  try {
    console.log('thinjournal demo: journal only (no device-mapper is touched; the driver issue replaces this demo)');
    console.log(`home: ${home}\n`);
    await session(dir);
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--crash', dir], { encoding: 'utf8' });
    console.log(`writer process: ${child.stdout.trim()} → killed by ${child.signal}`);
    const j = await Journal.open(dir);
    const report = await j.verify();
    console.log(`reopened after the crash: head seq ${j.head().seq}; chain ${report.result.ok ? `verified (${report.result.records} records)` : `BROKEN: ${JSON.stringify(report.result)}`}`);
    const records = await j.read();
    const began = new Map<number, string>();
    const ended = new Set<number>();
    for (const r of records) {
      if (r.type === 'TransactionBegan') began.set(r.txId, String(r.body.op));
      if (r.type === 'TransactionCommitted' || r.type === 'TransactionRolledBack') ended.add(r.txId);
    }
    const open = [...began].filter(([tx]) => !ended.has(tx));
    console.log(`transactions without an outcome: ${open.map(([tx, op]) => `tx ${tx} (${op})`).join(', ') || 'none'} — the reconciler (issue 5) decides roll-forward or roll-back from the kernel's transaction id\n`);
    console.log('audit trail (JSON Lines):');
    for (const r of records) console.log(JSON.stringify({ seq: r.seq, txId: r.txId, ts: new Date(r.ts).toISOString(), actor: r.actor, type: r.type, body: r.body, hash: r.hash.slice(0, 16) }));
    await j.close();
    if (!report.result.ok) process.exitCode = 4;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

await main();
