/**
 * The driver's errors. Codes are documented once, in packages/spec/src/errors.ts (ERROR_CODES).
 */
import { ThinjournalError, type ErrorDetails } from '@thinjournal/spec';

/**
 * The seed's ThinpoolInitError: the pool could not be set up or adopted (base image UUID or filesystem
 * mismatch, a pool the journal does not know, drift found at start-up, a kernel refusal while creating the
 * pool). Code ERR_THINPOOL_INIT; the underlying error, when there is one, is the `cause`.
 */
export class ThinpoolInitError extends ThinjournalError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('ERR_THINPOOL_INIT', message, details);
    this.name = 'ThinpoolInitError';
  }
}

export function driverClosed(): ThinjournalError {
  return new ThinjournalError('ERR_DRIVER_CLOSED', 'the device set was shut down');
}
