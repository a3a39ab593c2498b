/**
 * Error conventions of @thinjournal/dm (one rule for both backends):
 *  - Input we can reject before touching the kernel (bad names, bad tables, ids out of range) is a
 *    `ThinjournalError` with its own code (ERR_DM_NAME, ERR_DM_TABLE, ERR_DM_ARG) and has no effect.
 *  - A kernel call that fails is `ThinjournalError` code `ERR_KERNEL` with `errnoName` (e.g. 'EEXIST'),
 *    `errno` (number), `syscall` and `device`/`path`. KernelBackend puts the native errno error in `cause`;
 *    ModelBackend raises the errno the kernel returns for the same call (recorded in the guest) with a
 *    synthetic errno error as `cause` (`model: true`). Callers test `isErrno(err, 'EBUSY')`.
 */
import { ThinjournalError } from '@thinjournal/spec';
import { constants } from 'node:os';

export interface ErrnoErrorLike {
  code: string;
  errno: number;
  syscall: string;
  device?: string;
  path?: string;
  message: string;
}

function isErrnoErrorLike(e: unknown): e is ErrnoErrorLike {
  return typeof e === 'object' && e !== null && typeof (e as { code?: unknown }).code === 'string' &&
    typeof (e as { syscall?: unknown }).syscall === 'string';
}

/** Wraps a native (errno) error as ERR_KERNEL; anything else is returned unchanged. */
export function fromNative(err: unknown): unknown {
  if (err instanceof ThinjournalError || !isErrnoErrorLike(err)) return err;
  return new ThinjournalError('ERR_KERNEL', err.message, {
    cause: err,
    errnoName: err.code,
    errno: err.errno,
    syscall: err.syscall,
    ...(err.device !== undefined ? { device: err.device } : {}),
    ...(err.path !== undefined ? { path: err.path } : {}),
  });
}

/** The error ModelBackend raises where the kernel would fail with `errnoName`. */
export function kernelError(errnoName: string, syscall: string, where: { device?: string; path?: string } = {}): ThinjournalError {
  const errno = (constants.errno as Record<string, number>)[errnoName] ?? 0;
  const subject = where.device ?? where.path;
  const message = `${syscall}${subject ? ' ' + subject : ''}: ${errnoName} (model)`;
  const cause = Object.assign(new Error(message), { code: errnoName, errno, syscall, ...where, model: true });
  return new ThinjournalError('ERR_KERNEL', message, { cause, errnoName, errno, syscall, ...where });
}

/** True when `err` is ERR_KERNEL with the given errno name. */
export function isErrno(err: unknown, errnoName: string): boolean {
  return err instanceof ThinjournalError && err.code === 'ERR_KERNEL' &&
    (err as ThinjournalError & { errnoName?: string }).errnoName === errnoName;
}

export function errnoOf(err: unknown): string | undefined {
  if (err instanceof ThinjournalError && err.code === 'ERR_KERNEL') return (err as ThinjournalError & { errnoName?: string }).errnoName;
  return undefined;
}
