/**
 * Errors are values with a stable string `code` and an optional `cause` (abstract-level style).
 * Every code is documented exactly once, here; README and journal-spec refer to this table.
 * Programmer misuse (wrong argument types to an API) is a plain `TypeError`, not a coded error.
 */
export const ERROR_CODES = {
  // journal-spec / codec
  ERR_BAD_EVENT: 'An event or record does not match journal-spec (unknown type, missing or mistyped field, oversized body).',
  ERR_UNKNOWN_VERSION: 'A record or journal carries a format version newer than this build understands; it is refused, never guessed.',
  ERR_UNDECODABLE: 'Stored bytes are not a valid msgpack record envelope.',
  // journal
  ERR_NO_JOURNAL: 'There is no journal at the path (it does not exist, or is an empty directory); nothing was created. Only `init` (and the driver\'s first start) create one.',
  ERR_NOT_A_JOURNAL: 'The path exists but is not a journal: a file, or a directory holding something other than a LevelDB database of thinjournal records; nothing was changed.',
  ERR_JOURNAL_ACCESS: 'The journal could not be read for lack of permission (EACCES/EPERM, in `errno`); nothing was changed.',
  ERR_JOURNAL_IO: 'A file-system error (ENOSPC, EIO, EROFS, EMFILE…, in `errno`) kept the journal from being opened, copied or read; the journal is not known to be damaged.',
  ERR_JOURNAL_BUSY: 'A reader could not take a consistent copy of the journal because a writer kept changing it; try again.',
  ERR_JOURNAL_LOCKED: 'Another process (or another open handle) holds the journal; it was not opened.',
  ERR_JOURNAL_CORRUPT: 'The journal failed verification; the error names the first bad seq, or the LevelDB file and offset (`file`, `offset`), or the key (`key`), and the reason (`reason`, journal-spec/format.md §8).',
  ERR_JOURNAL_TORN: 'The journal ends in an incomplete write (a torn tail: a torn last chunk, or a torn final write of LevelDB\'s log, `file`/`offset`): distinct from corruption; dropped only on an operator\'s word (`repairTornTail`).',
  ERR_JOURNAL_READONLY: 'A durable write failed earlier; the journal is fail-stopped and read-only until reopened.',
  ERR_JOURNAL_CLOSED: 'The journal was closed.',
  ERR_CHECKPOINT_INVALID: 'A stored checkpoint does not match its hash or the chain at its seq.',
  // model / commands
  ERR_BAD_ID: 'A device hash / id is empty where not allowed, too long, or contains a path separator, NUL, control character or `..`.',
  ERR_BAD_SIZE: 'A size is not a positive safe integer, is out of bounds, or is not aligned as required.',
  ERR_BAD_OPTION: 'A dm.* option is unknown, malformed, or conflicts with another; the message names the option and its text.',
  ERR_DEVICE_EXISTS: 'A device with that hash already exists.',
  ERR_DEVICE_NOT_FOUND: 'No device with that hash exists (or it was deleted).',
  ERR_DEVICE_BUSY: 'The device is mounted, active or has dependants, and the operation refuses to proceed.',
  ERR_POOL_NOT_INITIALISED: 'The pool has not been initialised yet.',
  ERR_POOL_EXISTS: 'The pool is already initialised.',
  ERR_NO_SPACE: 'The pool is short of free space (dm.min_free_space) or device IDs.',
  ERR_EVENT_CONFLICT: 'An event cannot apply to the current state (replay of a journal that does not fit the model).',
  ERR_STATE_HASH_MISMATCH: 'Replayed state does not hash to the value stored with a checkpoint.',
  // snapshot namespace (containerd's snapshotter API; packages/model snapshots.ts, packages/snapshotter)
  ERR_SNAPSHOT_INVALID: 'A snapshot request is malformed: a key or name empty, over its byte limit or holding NUL; labels over their limits; an unknown kind; a field path other than `labels` / `labels.<key>`. Nothing was journaled.',
  ERR_SNAPSHOT_NOT_FOUND: 'No snapshot with that key (or name) exists in the namespace.',
  ERR_SNAPSHOT_EXISTS: 'A snapshot with that key (or name) already exists; keys and names share one namespace.',
  ERR_SNAPSHOT_PARENT: 'The parent named for a new snapshot does not exist or is not a committed snapshot.',
  ERR_SNAPSHOT_NOT_ACTIVE: 'The operation needs an active snapshot (Commit), and the snapshot is a view or committed.',
  ERR_SNAPSHOT_HAS_CHILDREN: 'The snapshot is the parent of other snapshots; remove them first.',
  // device-mapper / kernel backend (packages/dm)
  ERR_KERNEL: 'A kernel call failed (dm ioctl, loop, block device, mount); `errnoName` is the errno (EBUSY, EEXIST, EINVAL, ENODATA, ENXIO…), with `syscall`, `device`/`path`; the native error is the `cause`. The model backend raises the same errno the kernel would.',
  ERR_DM_NAME: 'A device-mapper device name is empty, longer than 127 bytes, contains `/`, or is `.` or `..`; nothing was sent to the kernel.',
  ERR_DM_TABLE: 'A thin-pool or thin table is invalid (block size, low-water mark, length, device, thin id); nothing was sent to the kernel.',
  ERR_DM_ARG: 'A dm-thin argument is out of range (thin id not in 0..2^24-1, transaction id not a non-negative safe integer); nothing was sent.',
  ERR_DM_STATUS: 'A device-mapper status or table line does not have the format this build parses; the line is in `line`.',
  ERR_FS_UNKNOWN: 'A block device holds no filesystem this build recognises (ext4, xfs) at its superblock.',
  ERR_FS_TOOL: 'A filesystem tool (mkfs, resize2fs, xfs_growfs, thin_ls…) failed; `tool`, `status` (exit status) and `stderr` are set.',
  ERR_NATIVE_UNAVAILABLE: 'The kernel backend is unavailable: the native addon (@thinjournal/native) is not built or cannot load, or probeDeviceMapper found no device-mapper that answers DM_VERSION (the message is its reason).',
  // driver (packages/driver) and CLI
  ERR_THINPOOL_INIT: "The seed's ThinpoolInitError: the pool could not be set up or adopted (base image UUID or filesystem differs from the journal's, a metadata device holding a pool the journal does not know, drift at start-up, an option that cannot change); the underlying error is the `cause`.",
  ERR_BAD_PATH: 'A home or mount path is not an absolute, normalised path (without NUL) inside the driver\'s home, or cannot serve as one: a file where a directory must be, or a directory that cannot be created or written (the errno is in the message); the message names the path.',
  ERR_NOT_MOUNTED: '`put` of a layer this driver has not mounted with `get`.',
  ERR_DRIVER_CLOSED: 'The driver / device set was shut down or closed.',
  ERR_DRIFT: 'The kernel\'s pool and the journal disagree in a way recovery must not guess about (checkTransactionId); nothing was changed — see `thinjournal verify --kernel`.',
  ERR_UNEXPECTED: 'The CLI\'s code for an error that carried none (a bug: please report it with the message).',
  ERR_OUTPUT: 'Writing the command\'s output failed (ENOSPC, EIO, …; the errno is in the message and `errno`); what the command did before stands. A reader closing the pipe (EPIPE) is not an error: the CLI stops quietly with exit 0.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetails {
  cause?: unknown;
  [key: string]: unknown;
}

/**
 * A coded error. `code` is one of ERROR_CODES (a closed union: a new code is added to the table first). A
 * broken hash chain, a sequence gap or a record under the wrong key is ERR_JOURNAL_CORRUPT with its `reason`
 * (journal-spec/format.md §8), not a code of its own.
 */
export class ThinjournalError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    const { cause, ...rest } = details;
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ThinjournalError';
    this.code = code;
    Object.assign(this, rest);
  }
}

/** True when `err` is a coded error with the given code. */
export function isCode(err: unknown, code: ErrorCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
