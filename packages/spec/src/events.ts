/**
 * The event catalogue of journal-spec v1 (journal-spec/events.md is its prose twin; keep them in step).
 *
 * Each event type has a body schema: field → kind. Bodies are strict: every required field present, no
 * unknown field, every value of its kind. Kinds:
 *   str      UTF-8 string, at most 4096 bytes, no NUL
 *   id       device hash: a str of at most 255 bytes (the model applies the full id rules)
 *   uint     safe integer ≥ 0 (≤ 2^53−1)
 *   bool     true / false
 *   strmap   map of str → str (at most 256 entries)
 *   strlist  array of str (at most 4096 entries)
 * A field name ending in `?` is optional.
 */
import { ThinjournalError } from './errors.js';

export type FieldKind = 'str' | 'id' | 'uint' | 'bool' | 'strmap' | 'strlist';
export type BodySchema = Readonly<Record<string, FieldKind>>;

export const EVENT_SCHEMAS = {
  // --- pool ------------------------------------------------------------------------------------
  /** The pool was created (or adopted) with these devices and geometry. First event of a journal's pool.
   *  `devicePrefix`: thin devices are activated as `<devicePrefix>-<hash>` (`-base` for the base image). */
  PoolInitialised: {
    poolName: 'str', dataDevice: 'str', metadataDevice: 'str', loopback: 'bool',
    dataSize: 'uint', metadataSize: 'uint', blockSize: 'uint', 'options?': 'strmap', 'devicePrefix?': 'str',
  },
  /** The pool's data (and optionally metadata) device grew. Sizes in bytes. */
  PoolResized: { dataSize: 'uint', 'metadataSize?': 'uint' },
  /** The pool's data and metadata devices are now these paths (e.g. a loopback pool's files re-attached after a
   *  reboot, on other loop devices). Pool metadata is unchanged: not a transaction; the envelope carries the
   *  committed txId, and it may be written while a transaction is pending (its recovery needs the new paths).
   *  `dataFile`/`metadataFile`: the backing files of a loopback pool, for the audit trail only. */
  PoolDevicesAttached: { dataDevice: 'str', metadataDevice: 'str', 'dataFile?': 'str', 'metadataFile?': 'str' },
  // --- thin devices --------------------------------------------------------------------------
  /** The base image's thin device was created and formatted. */
  BaseImageCreated: { hash: 'id', deviceId: 'uint', size: 'uint', fs: 'str', uuid: 'str' },
  /** A new, empty thin device (create_thin). */
  DeviceCreated: { hash: 'id', deviceId: 'uint', size: 'uint' },
  /** A thin snapshot of `parentHash` (create_snap). `size` ≥ the parent's size. */
  SnapshotCreated: { hash: 'id', deviceId: 'uint', parentHash: 'id', parentDeviceId: 'uint', size: 'uint' },
  /** The thin device was deleted from the pool (delete message); its device id is free again. */
  DeviceDeleted: { hash: 'id', deviceId: 'uint' },
  /** Deletion was requested but the device is busy; it is kept and retried later (dm.use_deferred_deletion). */
  DeletionDeferred: { hash: 'id', deviceId: 'uint' },
  /** A thin device grew (its table reloaded with a larger size). */
  DeviceResized: { hash: 'id', size: 'uint' },
  // --- activation and mounts (not pool metadata: no new transaction id) ----------------------------
  DeviceActivated: { hash: 'id', deviceId: 'uint', name: 'str', size: 'uint' },
  /** `deferred`: the kernel was asked for deferred removal because the device was still open. */
  DeviceDeactivated: { hash: 'id', deferred: 'bool' },
  DeviceMounted: { hash: 'id', path: 'str', 'options?': 'str' },
  DeviceUnmounted: { hash: 'id', path: 'str' },
  // --- transactions ---------------------------------------------------------------------------
  /** Intent: a mutating operation `op` begins; the envelope's txId is the pool transaction id it will commit as. */
  TransactionBegan: { op: 'str', 'hash?': 'id' },
  /** Outcome: the kernel's pool transaction id reached the envelope's txId. */
  TransactionCommitted: {},
  /** Outcome: the operation was undone; the pool stays at txId − 1. */
  TransactionRolledBack: { reason: 'str' },
  /** A state checkpoint was stored at `atSeq` with canonical state hash `stateHash` (hex). */
  Checkpoint: { atSeq: 'uint', stateHash: 'str' },
  // --- repairs (an operator-confirmed change to the kernel after drift; not pool transactions) ---------
  /** Intent: an operator confirmed the repair of `drift` (the recovery plan's reason); `steps` describe, in
   *  order, what will be changed in the kernel. Appended durably before the first step runs. */
  RepairBegan: { drift: 'str', steps: 'strlist' },
  /** Outcome: every step of the repair begun last ran (`skipped`: found already done by its guard). */
  RepairCompleted: { completed: 'uint', skipped: 'uint' },
  /** Outcome: step `completed` + 1 of the repair begun last failed with `reason`; the steps before it ran. */
  RepairFailed: { completed: 'uint', reason: 'str' },
  // --- snapshots (containerd namespace) ---
  // containerd's snapshot keys and names: arbitrary strings mapped to thin devices by `hash`. Times are
  // microseconds since the Unix epoch. A namespace event stamped with a pending transaction's txId belongs to
  // that transaction (it applies at TransactionCommitted and is dropped by TransactionRolledBack); stamped
  // with the committed txId it applies at once.
  /** `key` names a new snapshot of `kind` "active" or "view" on device `hash`; `parent`: the committed snapshot it
   *  is based on (its device is the origin of `hash`), absent for a snapshot with no parent. created = updated. */
  SnapshotPrepared: { key: 'str', kind: 'str', 'parent?': 'str', hash: 'id', labels: 'strmap', created: 'uint' },
  /** The active snapshot `key` became the committed snapshot `name` on the same device, with these labels;
   *  `key` is gone. created = updated = `time`. */
  SnapshotCommitted: { key: 'str', name: 'str', labels: 'strmap', time: 'uint' },
  /** The snapshot's labels are now exactly `labels`. */
  SnapshotLabelsUpdated: { key: 'str', labels: 'strmap', updated: 'uint' },
  /** The snapshot `key` is gone from the namespace (its device is deleted in the same transaction, or marked
   *  DeletionDeferred beside it). */
  SnapshotRemoved: { key: 'str' },
} as const satisfies Record<string, BodySchema>;

export type EventType = keyof typeof EVENT_SCHEMAS;
export const EVENT_TYPES = Object.freeze(Object.keys(EVENT_SCHEMAS) as EventType[]);

type KindValue<K extends FieldKind> = K extends 'str' | 'id' ? string
  : K extends 'uint' ? number
  : K extends 'bool' ? boolean
  : K extends 'strmap' ? Readonly<Record<string, string>>
  : readonly string[];
type Req<S> = { [K in keyof S as K extends `${string}?` ? never : K]: S[K] extends FieldKind ? KindValue<S[K]> : never };
type Opt<S> = { [K in keyof S as K extends `${infer N}?` ? N : never]?: S[K] extends FieldKind ? KindValue<S[K]> : never };
export type EventBody<T extends EventType> = Readonly<Req<(typeof EVENT_SCHEMAS)[T]> & Opt<(typeof EVENT_SCHEMAS)[T]>>;

/** An event as the model produces it: the envelope fields the journal cannot assign itself, plus the body. */
export type JournalEvent = { [T in EventType]: { readonly type: T; readonly txId: number; readonly body: EventBody<T>; readonly actor?: string; readonly reason?: string } }[EventType];

export const MAX_STR_BYTES = 4096;
export const MAX_ID_BYTES = 255;
export const MAX_MAP_ENTRIES = 256;
export const MAX_LIST_ENTRIES = 4096;

function bad(message: string, details: Record<string, unknown> = {}): ThinjournalError {
  return new ThinjournalError('ERR_BAD_EVENT', message, details);
}

function checkStr(v: unknown, max: number, where: string): void {
  if (typeof v !== 'string') throw bad(`${where}: expected a string, got ${describe(v)}`);
  if (v.indexOf('\0') !== -1) throw bad(`${where}: contains NUL`);
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short strings need no byte count.
  if (v.length * 3 > max && Buffer.byteLength(v) > max) throw bad(`${where}: longer than ${max} bytes`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : `number ${v}`;
  return typeof v;
}

export function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function checkField(kind: FieldKind, v: unknown, where: string): void {
  switch (kind) {
    case 'str': return checkStr(v, MAX_STR_BYTES, where);
    case 'id': return checkStr(v, MAX_ID_BYTES, where);
    case 'uint':
      if (!isUint(v)) throw bad(`${where}: expected a safe integer ≥ 0, got ${describe(v)}`);
      return;
    case 'bool':
      if (typeof v !== 'boolean') throw bad(`${where}: expected a boolean, got ${describe(v)}`);
      return;
    case 'strmap': {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) throw bad(`${where}: expected a map, got ${describe(v)}`);
      const keys = Object.keys(v);
      if (keys.length > MAX_MAP_ENTRIES) throw bad(`${where}: more than ${MAX_MAP_ENTRIES} entries`);
      for (const k of keys) { checkStr(k, MAX_STR_BYTES, `${where} key`); checkStr((v as Record<string, unknown>)[k], MAX_STR_BYTES, `${where}.${k}`); }
      return;
    }
    case 'strlist': {
      if (!Array.isArray(v)) throw bad(`${where}: expected an array, got ${describe(v)}`);
      if (v.length > MAX_LIST_ENTRIES) throw bad(`${where}: more than ${MAX_LIST_ENTRIES} entries`);
      v.forEach((s, i) => checkStr(s, MAX_STR_BYTES, `${where}[${i}]`));
      return;
    }
  }
}

interface CompiledField { readonly name: string; readonly kind: FieldKind; readonly optional: boolean; readonly where: string }
/** Schemas flattened once, so that validating a body on the replay path allocates nothing. */
const COMPILED: Readonly<Record<string, readonly CompiledField[]>> = Object.fromEntries(
  Object.entries(EVENT_SCHEMAS).map(([type, schema]) => [type, Object.entries(schema as BodySchema).map(([spec, kind]) => {
    const optional = spec.endsWith('?');
    const name = optional ? spec.slice(0, -1) : spec;
    return { name, kind, optional, where: `${type}.${name}` };
  })]),
);

/** Throws ERR_BAD_EVENT unless `body` is a valid body of event `type`. */
export function validateBody(type: unknown, body: unknown): asserts type is EventType {
  const fields = typeof type === 'string' && Object.hasOwn(COMPILED, type) ? COMPILED[type]! : null;
  if (!fields) throw bad(`unknown event type ${JSON.stringify(type)}`, { type });
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array) throw bad(`${type}: body must be a map, got ${describe(body)}`, { type });
  const b = body as Record<string, unknown>;
  let present = 0;
  for (const f of fields) {
    const v = b[f.name];
    if (v === undefined) {
      if (!f.optional) throw bad(`${type}: missing field "${f.name}"`, { type, field: f.name });
      continue;
    }
    present++;
    checkField(f.kind, v, f.where);
  }
  let count = 0;
  for (const k in b) if (Object.hasOwn(b, k)) count++;
  if (count !== present) {
    const unknown = Object.keys(b).find((k) => !fields.some((f) => f.name === k) || b[k] === undefined);
    throw bad(`${type}: unknown (or undefined) field "${unknown}"`, { type, field: unknown });
  }
}
