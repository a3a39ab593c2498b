/**
 * The daemon: one per home. Start-up is the driver's (DeviceSet.open): options parsed, the journal opened
 * exclusively (a second daemon on the home gets ERR_JOURNAL_LOCKED and changes nothing), the state replayed,
 * recovery run against the kernel, the pool and the base image set up on first use. Then the base image's
 * `lost+found` is removed once (a new snapshot's root holds only what the image puts there), and the socket
 * is served. stop() drains: no new calls, those in flight finish, then the journal closes. The kernel is left
 * as it is (devices active, containers' mounts intact), as the next start expects (unless `teardown`).
 */
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { BASE_HASH } from '@thinjournal/model';
import type { Backend } from '@thinjournal/dm';
import { DeviceSet, type DeviceSetOptions } from '@thinjournal/driver';
import { SnapshotService } from './service.js';
import { serve, type ServerHandle } from './server.js';

export interface DaemonOptions {
  readonly home: string;
  readonly socket: string;
  /** dm.* options, as for `thinjournal init`. */
  readonly options?: readonly string[];
  /** The device-mapper backend (tests give a ModelBackend); default: the kernel's. */
  readonly backend?: Backend;
  readonly log?: (line: string) => void;
  /**
   * At stop, also deactivate every device, remove the pool and detach its loop devices (the driver's
   * shutdown) instead of leaving the kernel as it is: for throw-away homes (a testsuite's), never for a home
   * whose snapshots containers have mounted.
   */
  readonly teardown?: boolean;
  /** Passed to DeviceSet.open (crash tests stop the process at a protocol point). */
  readonly deviceSet?: Omit<DeviceSetOptions, 'backend'>;
}

export interface Daemon {
  readonly service: SnapshotService;
  readonly handle: ServerHandle;
  readonly deviceSet: DeviceSet;
  /** Drains and closes; idempotent. */
  stop(): Promise<void>;
}

export async function startDaemon(o: DaemonOptions): Promise<Daemon> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const ds = await DeviceSet.open(o.home, o.options ?? [], {
    actor: 'thinjournal-snapshotter', ...(o.backend ? { backend: o.backend } : {}), ...o.deviceSet,
    logger: (level, message) => log(`thinjournal-snapshotter: dm(${level}): ${message}`),
  });
  let handle: ServerHandle;
  const service = new SnapshotService(ds);
  try {
    if (ds.recovery && ds.recovery.plan.steps.length) log(`thinjournal-snapshotter: recovery ${ds.recovery.plan.verdict}: ${ds.recovery.plan.reason}`);
    await removeBaseLostFound(ds);
    handle = await serve(service, o.socket);
  } catch (err) {
    await ds.close().catch(() => {});
    throw err;
  }
  log(`thinjournal-snapshotter: serving ${o.socket} (home ${o.home}, pool ${ds.poolName})`);
  let stopping: Promise<void> | null = null;
  return {
    service, handle, deviceSet: ds,
    stop() {
      stopping ??= (async () => {
        await handle.drain();
        if (o.teardown) await ds.shutdown(); else await ds.close();
      })();
      return stopping;
    },
  };
}

/**
 * mkfs leaves `lost+found` in the base image, and every snapshot without a parent starts as a copy of it;
 * containerd's layers expect an empty root. Removed once, with the base image mounted (journaled) under the
 * home's mnt directory. The model backend has no file-system contents: nothing to do there.
 */
async function removeBaseLostFound(ds: DeviceSet): Promise<void> {
  if (ds.backend.kind === 'model') return;
  const s = ds.modelState;
  if (s.snapshots.size > 0) return;
  const mp = path.join(ds.layout.mnt, 'base-prepare');
  mkdirSync(mp, { recursive: true, mode: 0o700 });
  await ds.mountDevice(BASE_HASH, mp);
  try {
    const lf = path.join(mp, 'lost+found');
    if (existsSync(lf)) rmdirSync(lf);
  } finally {
    await ds.unmountDevice(BASE_HASH, mp);
  }
}

/**
 * `thinjournal snapshotter`: runs until SIGTERM or SIGINT, then drains and exits 0. Resolves with the exit
 * code once stopped.
 */
export async function runDaemon(o: DaemonOptions): Promise<number> {
  const d = await startDaemon(o);
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      log(`thinjournal-snapshotter: ${sig}: draining ${d.handle.inFlight()} call(s) in flight`);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await d.stop();
  log('thinjournal-snapshotter: stopped');
  return 0;
}
