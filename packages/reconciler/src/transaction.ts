/**
 * The kernel steps of a transaction (journal-spec/protocol.md §2, between the intent and the commit point):
 * one small function per event of an intent, from the event to the steps that make it true in the kernel.
 * The Engine runs each step once, in order, with a protocol point after each, and undoes what the steps made
 * when one fails (TransactionSteps.undo). Unlike a recovery plan's steps these carry no guard: a transaction
 * runs on a kernel the journal describes, and anything found already there is a failure, never "done".
 */
import { ThinjournalError, type JournalEvent } from '@thinjournal/spec';
import { recordedTexts, type State } from '@thinjournal/model';
import { isFsType, type FsType, type PoolGeometry } from '@thinjournal/dm';

export type TransactionStep =
  | { readonly kind: 'createThin'; readonly deviceId: number }
  | { readonly kind: 'createSnap'; readonly deviceId: number; readonly originId: number }
  | { readonly kind: 'deleteThin'; readonly deviceId: number }
  | { readonly kind: 'activateThin'; readonly name: string; readonly deviceId: number; readonly size: number }
  | { readonly kind: 'mkfs'; readonly name: string; readonly fs: FsType; readonly uuid: string; readonly args: readonly string[] }
  | { readonly kind: 'removeDevice'; readonly name: string }
  | { readonly kind: 'suspendDevice'; readonly name: string }
  | { readonly kind: 'resumeDevice'; readonly name: string }
  /** The pool's table reloaded for a new geometry: load, suspend, resume (one step: the table swap). */
  | { readonly kind: 'reloadPool'; readonly pool: PoolGeometry };

/** What the step functions read: the state with the intent applied, and whether a dm device runs (exists with I/O not suspended). */
export interface TransactionContext {
  readonly state: State;
  running(name: string): Promise<boolean>;
}

type Event<T extends JournalEvent['type']> = Extract<JournalEvent, { type: T }>;

function createThin(e: Event<'DeviceCreated'>): TransactionStep[] {
  return [{ kind: 'createThin', deviceId: e.body.deviceId }];
}

/**
 * Docker's createBaseImage: create_thin, then the filesystem (activate, mkfs, deactivate), all before the
 * commit point: a base image without its filesystem is never committed. The filesystem gets the UUID the
 * intent recorded (the driver checks it at every start: Docker's verifyBaseDeviceUUIDFS) and the
 * dm.mkfsarg arguments in force.
 */
function createBaseImage(e: Event<'BaseImageCreated'>, c: TransactionContext): TransactionStep[] {
  const pool = c.state.pool!;
  const name = `${pool.devicePrefix}-base`;
  const fs = e.body.fs;
  if (!isFsType(fs)) throw new ThinjournalError('ERR_EVENT_CONFLICT', `BaseImageCreated: filesystem ${JSON.stringify(fs)} is not ext4 or xfs`);
  const mkfsarg = pool.options['dm.mkfsarg'];
  return [
    { kind: 'createThin', deviceId: e.body.deviceId },
    { kind: 'activateThin', name, deviceId: e.body.deviceId, size: e.body.size },
    { kind: 'mkfs', name, fs, uuid: e.body.uuid, args: mkfsarg === undefined ? [] : recordedTexts(mkfsarg) },
    { kind: 'removeDevice', name },
  ];
}

/** thin-provisioning.rst: an active origin is suspended before create_snap and resumed after. */
async function createSnapshot(e: Event<'SnapshotCreated'>, c: TransactionContext): Promise<TransactionStep[]> {
  const origin = c.state.devices.get(e.body.parentHash);
  const originName = origin?.active ? origin.dmName : null;
  const snap: TransactionStep = { kind: 'createSnap', deviceId: e.body.deviceId, originId: e.body.parentDeviceId };
  if (!originName || !(await c.running(originName))) return [snap];
  return [{ kind: 'suspendDevice', name: originName }, snap, { kind: 'resumeDevice', name: originName }];
}

function deleteThin(e: Event<'DeviceDeleted'>): TransactionStep[] {
  return [{ kind: 'deleteThin', deviceId: e.body.deviceId }];
}

function resizePool(e: Event<'PoolResized'>, c: TransactionContext): TransactionStep[] {
  const p = c.state.pool!;
  return [{ kind: 'reloadPool', pool: { dataDevice: p.dataDevice, metadataDevice: p.metadataDevice, dataSize: e.body.dataSize, blockSize: p.blockSize } }];
}

/** The kernel steps of one event of an intent (after its TransactionBegan). */
export async function transactionSteps(e: JournalEvent, c: TransactionContext): Promise<TransactionStep[]> {
  switch (e.type) {
    case 'DeviceCreated': return createThin(e);
    case 'BaseImageCreated': return createBaseImage(e, c);
    case 'SnapshotCreated': return createSnapshot(e, c);
    case 'DeviceDeleted': return deleteThin(e);
    case 'PoolResized': return resizePool(e, c);
    case 'SnapshotPrepared':
    case 'SnapshotCommitted':
    case 'SnapshotLabelsUpdated':
    case 'SnapshotRemoved':
      return []; // the snapshot namespace: journal only, applied with the transaction's commit
    default:
      throw new ThinjournalError('ERR_EVENT_CONFLICT', `no kernel step for ${e.type} inside a transaction`);
  }
}

/**
 * What a transaction's steps have made so far, for its undo: thin ids created, devices activated and
 * devices suspended (and not yet resumed). The undo resumes, then removes, then deletes, newest first.
 */
export class TransactionSteps {
  readonly created: number[] = [];
  readonly activated: string[] = [];
  readonly suspended: string[] = [];

  /** Records a step that completed. */
  done(st: TransactionStep): void {
    switch (st.kind) {
      case 'createThin':
      case 'createSnap':
        this.created.push(st.deviceId);
        return;
      case 'activateThin':
        this.activated.push(st.name);
        return;
      case 'removeDevice':
        drop(this.activated, st.name);
        return;
      case 'suspendDevice':
        this.suspended.push(st.name);
        return;
      case 'resumeDevice':
        drop(this.suspended, st.name);
        return;
      case 'mkfs':
      case 'deleteThin':
      case 'reloadPool':
        return;
    }
  }

  /** The undo, in order: resumes, removals, deletions of created thin ids. */
  undo(): TransactionStep[] {
    return [
      ...[...this.suspended].reverse().map((name): TransactionStep => ({ kind: 'resumeDevice', name })),
      ...[...this.activated].reverse().map((name): TransactionStep => ({ kind: 'removeDevice', name })),
      ...[...this.created].reverse().map((deviceId): TransactionStep => ({ kind: 'deleteThin', deviceId })),
    ];
  }
}

function drop(list: string[], name: string): void {
  const i = list.lastIndexOf(name);
  if (i >= 0) list.splice(i, 1);
}
