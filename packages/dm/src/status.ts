/**
 * Parsers (and, for the model, formatters) of the dm-thin status lines, per thin-provisioning.rst and the
 * kernel's pool_status / thin_status:
 *   thin-pool: <transaction id> <used meta>/<total meta> <used data>/<total data> <held metadata root|->
 *              ro|rw|out_of_data_space [no_]discard_passdown|ignore_discard error|queue_if_no_space
 *              needs_check|- <metadata low water mark>          — or "Fail" / "Error"
 *   thin:      <nr mapped sectors> <highest mapped sector|->    — or "Fail" / "-" (not yet set up)
 * The kernel ends lines with a space; parsers accept any whitespace. Anything else is ERR_DM_STATUS.
 */
import { ThinjournalError } from '@thinjournal/spec';

export type PoolMode = 'rw' | 'ro' | 'out_of_data_space';
export type DiscardMode = 'discard_passdown' | 'no_discard_passdown' | 'ignore_discard';
export type NoSpacePolicy = 'queue' | 'error';

export interface ThinPoolStatusOk {
  failed: false;
  transactionId: number;
  usedMetadataBlocks: number;
  totalMetadataBlocks: number;
  usedDataBlocks: number;
  totalDataBlocks: number;
  /** Root of the reserved metadata snapshot, or null ("-"). */
  heldMetadataRoot: number | null;
  mode: PoolMode;
  discard: DiscardMode;
  noSpace: NoSpacePolicy;
  needsCheck: boolean;
  /** Metadata low-water mark in blocks (kernels before 4.19 omit it: null). */
  metadataLowWaterMark: number | null;
}
export interface ThinPoolStatusFailed {
  failed: true;
  /** "Fail": the pool is in fail mode; "Error": the kernel could not read its metadata for the status. */
  reason: 'Fail' | 'Error';
}
export type ThinPoolStatus = ThinPoolStatusOk | ThinPoolStatusFailed;

export type ThinStatus =
  | { state: 'active'; mappedSectors: number; highestMappedSector: number | null }
  | { state: 'failed' }
  | { state: 'uninitialised' };

function bad(kind: string, line: string, why: string): never {
  throw new ThinjournalError('ERR_DM_STATUS', `${kind} status ${JSON.stringify(line)}: ${why}`, { line });
}

function num(tok: string | undefined, kind: string, line: string, what: string): number {
  if (tok === undefined || !/^\d+$/.test(tok)) bad(kind, line, `${what} is not an unsigned integer`);
  const n = Number(tok);
  if (!Number.isSafeInteger(n)) bad(kind, line, `${what} is beyond 2^53`);
  return n;
}

function ratio(tok: string | undefined, kind: string, line: string, what: string): [number, number] {
  const parts = tok?.split('/');
  if (!parts || parts.length !== 2) bad(kind, line, `${what} is not <used>/<total>`);
  const used = num(parts[0], kind, line, `used ${what}`);
  const total = num(parts[1], kind, line, `total ${what}`);
  if (used > total) bad(kind, line, `used ${what} exceeds total`);
  return [used, total];
}

export function parseThinPoolStatus(line: string): ThinPoolStatus {
  const K = 'thin-pool';
  const t = line.trim().split(/\s+/);
  if (t.length === 1 && (t[0] === 'Fail' || t[0] === 'Error')) return { failed: true, reason: t[0] };
  if (t.length !== 8 && t.length !== 9) bad(K, line, `expected 8 or 9 fields, got ${t[0] === '' ? 0 : t.length}`);
  const transactionId = num(t[0], K, line, 'transaction id');
  const [usedMetadataBlocks, totalMetadataBlocks] = ratio(t[1], K, line, 'metadata blocks');
  const [usedDataBlocks, totalDataBlocks] = ratio(t[2], K, line, 'data blocks');
  const heldMetadataRoot = t[3] === '-' ? null : num(t[3], K, line, 'held metadata root');
  const mode = t[4];
  if (mode !== 'rw' && mode !== 'ro' && mode !== 'out_of_data_space') bad(K, line, `unknown mode ${mode}`);
  const discard = t[5];
  if (discard !== 'discard_passdown' && discard !== 'no_discard_passdown' && discard !== 'ignore_discard') bad(K, line, `unknown discard mode ${discard}`);
  let noSpace: NoSpacePolicy;
  if (t[6] === 'queue_if_no_space') noSpace = 'queue';
  else if (t[6] === 'error_if_no_space') noSpace = 'error';
  else bad(K, line, `unknown no-space policy ${t[6]}`);
  if (t[7] !== 'needs_check' && t[7] !== '-') bad(K, line, `unknown needs_check field ${t[7]}`);
  const metadataLowWaterMark = t.length === 9 ? num(t[8], K, line, 'metadata low water mark') : null;
  return {
    failed: false, transactionId, usedMetadataBlocks, totalMetadataBlocks, usedDataBlocks, totalDataBlocks,
    heldMetadataRoot, mode, discard, noSpace, needsCheck: t[7] === 'needs_check', metadataLowWaterMark,
  };
}

export function formatThinPoolStatus(s: ThinPoolStatus): string {
  if (s.failed) return `${s.reason} `;
  return `${s.transactionId} ${s.usedMetadataBlocks}/${s.totalMetadataBlocks} ${s.usedDataBlocks}/${s.totalDataBlocks} ` +
    `${s.heldMetadataRoot ?? '-'} ${s.mode} ${s.discard} ${s.noSpace}_if_no_space ${s.needsCheck ? 'needs_check' : '-'} ` +
    (s.metadataLowWaterMark === null ? '' : `${s.metadataLowWaterMark} `);
}

export function parseThinStatus(line: string): ThinStatus {
  const K = 'thin';
  const t = line.trim().split(/\s+/);
  if (t.length === 1 && t[0] === 'Fail') return { state: 'failed' };
  if (t.length === 1 && t[0] === '-') return { state: 'uninitialised' };
  if (t.length !== 2) bad(K, line, `expected 2 fields, got ${t[0] === '' ? 0 : t.length}`);
  const mappedSectors = num(t[0], K, line, 'mapped sectors');
  const highestMappedSector = t[1] === '-' ? null : num(t[1], K, line, 'highest mapped sector');
  return { state: 'active', mappedSectors, highestMappedSector };
}

export function formatThinStatus(s: ThinStatus): string {
  if (s.state === 'failed') return 'Fail';
  if (s.state === 'uninitialised') return '-';
  return `${s.mappedSectors} ${s.highestMappedSector ?? '-'}`;
}
