/**
 * The crash-point matrix on the model backend (issue 5): every operation type × every protocol point × {process
 * crash (the kernel keeps everything), machine crash (the kernel loses activations and mounts)}. After each
 * crash: reopen the journal, rebuild the state, recover, and check that
 *   - recovery found no drift, and running it again plans nothing;
 *   - the journal's state and the kernel agree (transaction id, thin ids, activations, mounts), no pending
 *     transaction, no orphan thin id;
 *   - every acknowledged operation is present; the crashed (unacknowledged) one is all or nothing;
 *   - the chain verifies; the backend saw no hazard (e.g. create_snap of an unsuspended active origin).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Journal } from '@thinjournal/journal';
import { ModelBackend } from '@thinjournal/dm';
import type { Command, State } from '@thinjournal/model';
import { Engine, type ProtocolPoint } from '../src/index.js';

const G = 2 ** 30;
const M = 2 ** 20;

interface World { dir: string; base: string; backend: ModelBackend; journal: Journal; engine: Engine }

async function world(onPoint?: (p: ProtocolPoint, c: Command) => void | Promise<void>): Promise<World> {
  const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-matrix-'));
  const dir = path.join(base, 'journal');
  const backend = new ModelBackend();
  backend.addDisk('/dev/vdm', 64 * M);
  backend.addDisk('/dev/vdd', 8 * G);
  for (const m of ['/mnt/a', '/mnt/b', '/mnt/c']) backend.mkdir(m);
  const journal = await Journal.open(dir);
  const engine = await Engine.open(journal, backend, { actor: 'test', ...(onPoint ? { onPoint } : {}) });
  return { dir, base, backend, journal, engine };
}

/** Acknowledged history every case starts from: pool, base image, a (mounted), b (inactive). */
async function setup(e: Engine, withBase = true): Promise<void> {
  await e.execute({ type: 'initPool', poolName: 'tj-pool', devicePrefix: 'tj', dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', loopback: false, dataSize: 4 * G, metadataSize: 64 * M, blockSize: 65536 });
  if (!withBase) return;
  await e.execute({ type: 'createBaseImage', size: G, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' });
  await e.execute({ type: 'addDevice', hash: 'a', baseHash: '' });
  await e.execute({ type: 'addDevice', hash: 'b', baseHash: '' });
  await e.execute({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
}

interface Case { name: string; withBase?: boolean; prepare?: (e: Engine) => Promise<void>; command: Command }
const CASES: Case[] = [
  { name: 'createBaseImage', withBase: false, command: { type: 'createBaseImage', size: G, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' } },
  { name: 'createDevice', command: { type: 'createDevice', hash: 'empty', size: G } },
  { name: 'addDevice (inactive origin)', command: { type: 'addDevice', hash: 'c', baseHash: 'b' } },
  { name: 'addDevice (active origin: suspend/resume)', command: { type: 'addDevice', hash: 'c', baseHash: 'a' } },
  { name: 'deleteDevice', command: { type: 'deleteDevice', hash: 'b', syncDelete: true } },
  { name: 'resizePool', command: { type: 'resizePool', dataSize: 6 * G } },
  { name: 'activateDevice', command: { type: 'activateDevice', hash: 'b' } },
  { name: 'mountDevice (activates)', command: { type: 'mountDevice', hash: 'b', path: '/mnt/b' } },
  { name: 'unmountDevice (deactivates)', command: { type: 'unmountDevice', hash: 'a', path: '/mnt/a' } },
  { name: 'deactivateDevice', prepare: async (e) => { await e.execute({ type: 'activateDevice', hash: 'b' }); }, command: { type: 'deactivateDevice', hash: 'b' } },
];

/** The protocol points an operation passes, from a clean run. */
async function pointsOf(c: Case): Promise<ProtocolPoint[]> {
  const seen: ProtocolPoint[] = [];
  let recording = false;
  const w = await world((p) => { if (recording) seen.push(p); });
  try {
    await setup(w.engine, c.withBase !== false);
    await c.prepare?.(w.engine);
    recording = true;
    await w.engine.execute(c.command);
    return seen;
  } finally {
    await w.journal.close();
    rmSync(w.base, { recursive: true, force: true });
  }
}

/** Journal state and kernel agree, nothing pending. Returns a problem or null. */
async function agreement(s: State, b: ModelBackend): Promise<string | null> {
  if (s.pending) return `pending transaction ${s.pending.txId} left`;
  const pool = s.pool!;
  const md = await b.poolMetadata(pool.poolName);
  if (md.transactionId !== s.txId) return `kernel txid ${md.transactionId} ≠ journal ${s.txId}`;
  const ids = [...s.devices.values()].map((d) => d.deviceId).sort((x, y) => x - y);
  if (JSON.stringify(md.ids) !== JSON.stringify(ids)) return `kernel ids ${md.ids} ≠ journal ${ids}`;
  const kernelDevs = new Set((await b.listDevices()).map((d) => d.name));
  for (const d of s.devices.values()) {
    if (d.active && !kernelDevs.has(d.dmName!)) return `${d.hash} active in the journal, not in the kernel`;
    if (d.active && (await b.info(d.dmName!))?.suspended) return `${d.dmName} left suspended`;
    for (const m of d.mounts) if (!(await b.mounted(m.path))) return `${d.hash} mounted at ${m.path} in the journal only`;
    kernelDevs.delete(d.dmName ?? '');
  }
  kernelDevs.delete(pool.poolName);
  if (kernelDevs.size) return `kernel devices unknown to the journal: ${[...kernelDevs]}`;
  if (b.hazards.length) return `hazards: ${b.hazards.join('; ')}`;
  return null;
}

test('crash-point matrix: every operation × every protocol point × process/machine crash recovers to agreement', async () => {
  let cases = 0;
  let passed = 0;
  const failures: string[] = [];
  for (const c of CASES) {
    const points = await pointsOf(c);
    assert.ok(points.length > 0, `${c.name} passes protocol points`);
    for (const point of ['before-intent' as const, ...points]) {
      for (const kind of ['process', 'machine'] as const) {
        cases++;
        const label = `${c.name} @ ${point} / ${kind} crash`;
        let crashed!: () => void;
        const crash = new Promise<void>((r) => (crashed = r));
        let armed = false;
        const w = await world((p, cmd) => {
          if (armed && cmd === c.command && p === point) { crashed(); return new Promise<void>(() => {}); } // dies here
        });
        try {
          await setup(w.engine, c.withBase !== false);
          await c.prepare?.(w.engine);
          const before = w.engine.state;
          armed = true;
          if (point === 'before-intent') crashed();
          else void w.engine.execute(c.command).catch(() => {});
          await crash;
          // The process is gone: its journal handle closes (what LevelDB had is what survives), the engine is abandoned.
          await w.journal.close();
          if (kind === 'machine') w.backend.crash();
          // Restart.
          const journal = await Journal.open(w.dir);
          const engine = await Engine.open(journal, w.backend);
          const r1 = await engine.recover();
          const r2 = await engine.recover();
          const problem = r1.plan.verdict === 'drift' ? `drift: ${r1.plan.reason}`
            : r2.plan.steps.length ? `second recovery planned ${r2.plan.steps.map((s) => s.kind)}`
            : await agreement(engine.state, w.backend);
          // Acknowledged history is intact: every device that existed before is still there (or the op deleted it).
          const s = engine.state;
          const lost = [...before.devices.keys()].filter((h) => !s.devices.has(h) && !(c.command.type === 'deleteDevice' && c.command.hash === h));
          const v = await journal.verify();
          await journal.close();
          const why = problem ?? (lost.length ? `acknowledged devices lost: ${lost}` : !v.result.ok ? `chain: ${JSON.stringify(v.result)}` : null);
          if (why) failures.push(`${label}: ${why} (plan ${r1.plan.verdict}: ${r1.plan.steps.map((x) => x.kind).join(',')})`);
          else passed++;
        } finally {
          rmSync(w.base, { recursive: true, force: true });
        }
      }
    }
  }
  console.log(`  crash matrix: ${cases} cases (${CASES.length} operations × their protocol points × 2 crash kinds), ${passed} passed`);
  assert.equal(failures, [], failures.join('\n'));
  assert.is(passed, cases);
});

test.run();
