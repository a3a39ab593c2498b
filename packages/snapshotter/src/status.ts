/**
 * ThinjournalError codes → gRPC status codes: the one table (the README prints it). containerd's proxy client
 * turns the status code back into its errdefs (errdefs.FromGRPC), which is what callers of a snapshotter test.
 */
import { status, Metadata, type ServiceError } from '@grpc/grpc-js';

export const STATUS_OF: Readonly<Record<string, status>> = Object.freeze({
  ERR_SNAPSHOT_INVALID: status.INVALID_ARGUMENT,
  ERR_SNAPSHOT_PARENT: status.INVALID_ARGUMENT,
  ERR_SNAPSHOT_NOT_FOUND: status.NOT_FOUND,
  ERR_SNAPSHOT_EXISTS: status.ALREADY_EXISTS,
  ERR_SNAPSHOT_NOT_ACTIVE: status.FAILED_PRECONDITION,
  ERR_SNAPSHOT_HAS_CHILDREN: status.FAILED_PRECONDITION,
  ERR_BAD_ID: status.INVALID_ARGUMENT,
  ERR_BAD_SIZE: status.INVALID_ARGUMENT,
  ERR_BAD_OPTION: status.INVALID_ARGUMENT,
  ERR_DEVICE_BUSY: status.FAILED_PRECONDITION,
  ERR_NO_SPACE: status.RESOURCE_EXHAUSTED,
  ERR_DRIVER_CLOSED: status.UNAVAILABLE,
  ERR_JOURNAL_CLOSED: status.UNAVAILABLE,
  ERR_JOURNAL_READONLY: status.UNAVAILABLE,
});

/** A gRPC error for `err`: its code from STATUS_OF (INTERNAL for anything else), `CODE: message` as details. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const code = (err as { code?: unknown }).code;
  const known = typeof code === 'string' && Object.hasOwn(STATUS_OF, code);
  const metadata = new Metadata();
  if (typeof code === 'string') metadata.set('thinjournal-code', code);
  return {
    code: known ? STATUS_OF[code as string]! : status.INTERNAL,
    details: `${typeof code === 'string' ? `${code}: ` : ''}${(err as Error)?.message ?? String(err)}`,
    metadata,
  };
}
