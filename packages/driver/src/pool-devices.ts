/**
 * The pool's devices, made ready before recovery plans (at every start of the driver, and by `thinjournal
 * recover`): a loopback pool's files are found on the loop devices the kernel reports bound to them, or
 * attached to free ones, and new paths are journaled (PoolDevicesAttached) before anything is planned on
 * them. A loop is identified by its backing file, never by its number: after a reboot other files may hold
 * the old numbers. Block-device pools stay where the journal says; whether what is there is the pool's own
 * is the planner's check (planRecovery: sizes, the metadata superblock, the active table's devices).
 */
import { existsSync, statSync } from 'node:fs';
import { ThinjournalError } from '@thinjournal/spec';
import type { Backend } from '@thinjournal/dm';
import type { Engine, KernelViewOptions } from '@thinjournal/reconciler';
import { ensureSparseFile, type Layout } from './layout.js';

export interface PoolDevices {
  /** Loop devices this call attached (a caller whose start fails may detach them again). */
  readonly attached: readonly string[];
  /** What was done, or on a dry run what would be, one line each. */
  readonly notes: readonly string[];
  /** For Engine.recover on a dry run: where the pool's devices will be (loops not attached yet). */
  readonly view: KernelViewOptions;
}

export interface PoolDevicesOptions {
  /** Change nothing (a reader's journal): report what would be attached. */
  readonly dryRun?: boolean;
  readonly actor?: string;
}

export async function preparePoolDevices(engine: Engine, backend: Backend, layout: Layout, opts: PoolDevicesOptions = {}): Promise<PoolDevices> {
  const pool = engine.state.pool;
  if (!pool || !pool.loopback) return { attached: [], notes: [], view: {} };
  const files = { data: layout.dataFile, metadata: layout.metadataFile };
  for (const file of [files.data, files.metadata]) {
    if (!existsSync(file)) {
      throw new ThinjournalError('ERR_THINPOOL_INIT', `the journal's pool lives on ${files.data} and ${files.metadata}, and ${file} is missing`, { path: file });
    }
    if (!opts.dryRun) ensureSparseFile(backend, file, 0); // exists: kept as it is (a model backend learns of it)
  }
  const attached: string[] = [];
  const notes: string[] = [];
  const found = { data: await backend.findLoop(files.data), metadata: await backend.findLoop(files.metadata) };
  if (opts.dryRun) {
    const view: { data?: { number: string; size: number }; metadata?: { number: string; size: number } } = {};
    for (const role of ['data', 'metadata'] as const) {
      if (found[role]) continue;
      notes.push(`attach ${files[role]} to a free loop device (journaled as PoolDevicesAttached)`);
      view[role] = { number: 'unattached', size: statSync(files[role]).size };
    }
    return { attached, notes, view: { devices: view, ...(found.metadata ? {} : { metadataSource: files.metadata }) } };
  }
  const loops = { data: found.data, metadata: found.metadata };
  for (const role of ['data', 'metadata'] as const) {
    if (loops[role]) continue;
    const loop = await backend.attachLoop(files[role]);
    attached.push(loop);
    loops[role] = loop;
    notes.push(`attached ${files[role]} to ${loop}`);
  }
  if (loops.data !== pool.dataDevice || loops.metadata !== pool.metadataDevice) {
    // After a reboot the files come back on other loop numbers: recorded before recovery builds tables on them.
    await engine.execute({ type: 'attachPoolDevices', dataDevice: loops.data!, metadataDevice: loops.metadata!, dataFile: files.data, metadataFile: files.metadata }, { actor: opts.actor ?? 'recovery', reason: 'loopback files re-attached' });
    notes.push(`journaled: the pool's devices are now ${loops.data} (data) and ${loops.metadata} (metadata)`);
  }
  return { attached, notes, view: {} };
}
