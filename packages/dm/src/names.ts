import { ThinjournalError } from '@thinjournal/spec';

/** DM_NAME_LEN (128) includes the terminating NUL. */
export const DM_NAME_MAX_BYTES = 127;
/** DM_UUID_LEN (129) includes the terminating NUL. */
export const DM_UUID_MAX_BYTES = 128;
/** dm-thin device ids are 24 bits (drivers/md/dm-thin.c MAX_DEV_ID). */
export const MAX_THIN_ID = (1 << 24) - 1;

/**
 * Refuses names the kernel would refuse or that cannot name a node under /dev/mapper: empty, over
 * DM_NAME_LEN-1 bytes, containing '/', or '.'/'..'. Throws ERR_DM_NAME; nothing is sent to the kernel.
 */
export function checkDmName(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError('device name must be a string');
  const bytes = Buffer.byteLength(name, 'utf8');
  let why: string | null = null;
  if (bytes === 0) why = 'is empty';
  else if (bytes > DM_NAME_MAX_BYTES) why = `is ${bytes} bytes (limit ${DM_NAME_MAX_BYTES})`;
  else if (name.includes('/')) why = "contains '/'";
  else if (name === '.' || name === '..') why = `is '${name}'`;
  else if (/[\0-\x1f]/.test(name)) why = 'contains a control character';
  if (why) throw new ThinjournalError('ERR_DM_NAME', `device-mapper name ${JSON.stringify(name.slice(0, 40))} ${why}`, { dmName: name });
  return name;
}

export function checkUuid(uuid: string | undefined): void {
  if (uuid === undefined) return;
  if (Buffer.byteLength(uuid, 'utf8') > DM_UUID_MAX_BYTES || /[\0-\x1f]/.test(uuid)) {
    throw new ThinjournalError('ERR_DM_NAME', `device-mapper uuid is over ${DM_UUID_MAX_BYTES} bytes or has control characters`, { uuid });
  }
}

export function checkThinId(id: unknown, what = 'thin id'): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_THIN_ID) {
    throw new ThinjournalError('ERR_DM_ARG', `${what} ${String(id)} is not an integer in 0..${MAX_THIN_ID}`, { id });
  }
  return id;
}

export function checkTransactionId(t: unknown, what = 'transaction id'): number {
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0) {
    throw new ThinjournalError('ERR_DM_ARG', `${what} ${String(t)} is not a non-negative safe integer`, { transactionId: t });
  }
  return t;
}
