#!/usr/bin/env node
/**
 * README command 1 — the main job on the embedded default. In a temporary home: a loopback pool and a base
 * image, a few image layers and container snapshots, one container mounted and a file written into it; then
 * a process is killed in the middle of creating a snapshot (after the kernel made it, before the commit
 * point), and the next start recovers: the half-made snapshot is rolled back, the mounted container is
 * still there with its file. Finally the audit trail (`thinjournal dump`) and the snapshot tree
 * (`thinjournal lineage`) are printed, and everything is torn down.
 *
 * It runs on the kernel where probeDeviceMapper (packages/dm) finds a device-mapper that answers DM_VERSION
 * and the process is root (loop devices, mounts and device nodes need root). Otherwise it runs the same
 * scenario on the model backend (an in-memory dm-thin that holds no data) and its first line says so, with
 * the probe's reason; there the "kill" is a machine crash simulated in-process (the model's kernel state
 * lives in this process).
 *
 * Exit status: 0 when every check of the scenario held, 1 otherwise.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { init, statusPairs, type Driver } from '@thinjournal/driver';
import { KernelBackend, ModelBackend, probeDeviceMapper, type Backend } from '@thinjournal/dm';
import { main, type Io } from './main.js';

const OPTIONS = ['dm.loopdatasize=2G', 'dm.loopmetadatasize=64M', 'dm.basesize=256M', 'dm.fs=ext4'];
const out = (s = '') => process.stdout.write(s + '\n');

function check(ok: boolean, what: string): void {
  out(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) process.exitCode = 1;
}

/**
 * The backend, why it was picked, and how the demo's kill happens: `simulatedCrash` on a backend whose
 * kernel state lives in this process (the machine "loses power" in-process), null where a real child
 * process is SIGKILLed and the kernel keeps its state.
 */
interface Picked {
  readonly backend: Backend;
  readonly why: string;
  readonly simulatedCrash: (() => void) | null;
}

function onModel(why: string): Picked {
  const backend = new ModelBackend();
  return { backend, why, simulatedCrash: () => backend.crash() };
}

/** The kernel where the probe says device-mapper answers and we are root; else the model, and why. */
function pickBackend(): Picked {
  const probe = probeDeviceMapper();
  if (!probe.available) return onModel(probe.reason);
  if (process.getuid?.() !== 0) return onModel(`not root (${probe.reason}, but the demo's loop devices, mounts and device nodes need root)`);
  return { backend: new KernelBackend(), why: probe.reason, simulatedCrash: null };
}

/** A child process that begins `create c-crash` and is SIGKILLed after the kernel's create_snap. */
function killedChild(home: string): Promise<NodeJS.Signals | null> {
  const driver = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../driver/dist/src/index.js');
  const script = `
    const { init } = await import(${JSON.stringify(driver)});
    const d = await init(${JSON.stringify(home)}, ${JSON.stringify(OPTIONS)}, {}, { workers: false, onPoint: (p, c) => {
      if (c.type === 'addDevice' && c.hash === 'c-crash' && p === 'after-step-1') process.kill(process.pid, 'SIGKILL');
    } });
    await d.create('c-crash', 'layer-2');
    console.log('not killed');`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal));
  });
}

async function run(): Promise<void> {
  const picked = pickBackend();
  const { backend, why, simulatedCrash } = picked;
  // Files written into a mounted layer are real (and so checked) where the backend's mounts are.
  const realFiles = backend.supports.hostMounts;
  out(simulatedCrash === null
    ? `thinjournal demo — on this machine's device-mapper (kernel backend, loopback pool in a temporary home): ${why}`
    : `thinjournal demo — MODEL BACKEND: ${why}, so the same scenario runs on an in-memory model of dm-thin (no data is written; run as root on a host with device-mapper for the real thing)`);
  const top = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-demo-'));
  const home = path.join(top, 'home');
  let d: Driver | null = null;
  try {
    out(`\n1. init ${home} ${OPTIONS.join(' ')}`);
    d = await init(home, OPTIONS, {}, { backend, workers: false });
    for (const [k, v] of statusPairs(await d.deviceSet.status(), d.deviceSet)) out(`   ${k.padEnd(30)} ${v}`);

    out('\n2. image layers and container snapshots');
    const layers: [string, string][] = [['layer-1', ''], ['layer-2', 'layer-1'], ['layer-3', 'layer-2'], ['c-web', 'layer-3'], ['c-db', 'layer-2']];
    for (const [id, parent] of layers) {
      await d.create(id, parent);
      out(`   create ${id.padEnd(8)} from ${parent === '' ? '(base image)' : parent}`);
    }

    out('\n3. mount c-web and write a file');
    const rootfs = await d.get('c-web');
    out(`   get c-web → ${rootfs}`);
    const file = path.join(rootfs, 'hello.txt');
    if (realFiles) {
      writeFileSync(file, 'written before the crash\n');
      out(`   wrote ${file}`);
    } else {
      out('   (model backend: mounts are modelled, files are not — nothing written)');
    }

    out('\n4. a process is killed in the middle of `create c-crash` (after create_snap, before the commit point)');
    if (simulatedCrash === null) {
      await d.close(); // this process lets go of the journal; c-web stays mounted
      d = null;
      const signal = await killedChild(home);
      check(signal === 'SIGKILL', `the child died by ${signal ?? 'exit'}`);
    } else {
      await d.close();
      d = null;
      const crashing = await init(home, OPTIONS, {}, {
        backend, workers: false,
        onPoint: (p, c) => (c.type === 'addDevice' && c.hash === 'c-crash' && p === 'after-step-1' ? new Promise<void>(() => {}) : undefined),
      });
      void crashing.create('c-crash', 'layer-2');
      await new Promise((r) => setTimeout(r, 200));
      await crashing.deviceSet.journalHandle.close(); // the process is gone…
      simulatedCrash(); // …and the machine lost its kernel state (pool, devices, mounts, loops)
      out('   model: the operation stopped there and the machine "lost power" (kernel state gone)');
    }

    out('\n5. restart: recovery');
    d = await init(home, OPTIONS, {}, { backend, workers: false });
    const r = d.deviceSet.recovery!;
    out(`   verdict: ${r.plan.verdict} — ${r.plan.reason}`);
    for (const s of r.plan.steps) out(`     ${s.kind}${'name' in s ? ` ${String(s.name)}` : ''}${'deviceId' in s ? ` id ${String(s.deviceId)}` : ''}${'path' in s ? ` ${String(s.path)}` : ''}`);
    check(r.plan.verdict === 'roll-back' || (simulatedCrash !== null && r.plan.steps.some((s) => s.kind === 'deleteThin' || s.kind === 'createPool')), 'the half-made snapshot was rolled back');
    check(!d.exists('c-crash'), 'c-crash does not exist (the caller was never answered)');
    check(['layer-1', 'layer-2', 'layer-3', 'c-web', 'c-db'].every((id) => d!.exists(id)), 'every acknowledged device is there');
    check((await backend.mounted(path.dirname(rootfs))) !== null, 'c-web is mounted');
    if (realFiles) check(readFileSync(file, 'utf8') === 'written before the crash\n', `${file} still reads "written before the crash"`);
    check(d.references('c-web') === 1, 'the re-mounted layer holds one reference in the new process');
    await d.put('c-web');
    check((await backend.mounted(path.dirname(rootfs))) === null, 'put unmounted c-web');

    out('\n6. shutdown (Docker\'s Cleanup: unmount, deactivate, remove the pool, detach the loops)');
    await d.cleanup();
    d = null;

    const io: Io = { stdout: { write: (s: string) => process.stdout.write(s), isTTY: true, columns: Math.max(process.stdout.columns ?? 0, 160) }, stderr: process.stderr, env: process.env, backend };
    out('\n7. audit trail — thinjournal dump --home ' + home);
    if ((await main(['dump', '--home', home, '--verify'], io)) !== 0) process.exitCode = 1;
    out('\n8. snapshot lineage — thinjournal lineage --home ' + home);
    if ((await main(['lineage', '--home', home], io)) !== 0) process.exitCode = 1;
    out(process.exitCode ? '\ndemo: some checks FAILED' : '\ndemo: all checks held');
  } finally {
    if (d) await d.cleanup().catch(() => {});
    rmSync(top, { recursive: true, force: true });
  }
}

run().catch((err) => {
  process.stderr.write(`demo failed: ${(err as { code?: string }).code ?? ''} ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
