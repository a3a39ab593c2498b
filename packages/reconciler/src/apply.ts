/** The model applied to journal records, where a record the model refuses is corruption of the journal. */
import { ThinjournalError, chainError, type ChainProblem, type JournalEvent, type ReplayRecord } from '@thinjournal/spec';
import type { Projection } from '@thinjournal/model';

/** The problem a record the model refused is: corruption (reason `model`) at its seq. */
export function modelProblem(r: ReplayRecord, err: ThinjournalError): ChainProblem {
  return { kind: 'corrupt', seq: r.seq, reason: 'model', message: `the model cannot apply record ${r.seq} (${r.type}): ${err.code}: ${err.message}` };
}

/**
 * Applies one record; a chain-valid record the model cannot apply is corruption of the journal (it does not
 * describe a history the model can have), named by its seq, with the model's error as `cause`.
 */
export function applyRecord(p: Projection, r: ReplayRecord): void {
  try {
    p.apply(r);
  } catch (err) {
    if (!(err instanceof ThinjournalError)) throw err;
    throw chainError(modelProblem(r, err), err);
  }
}

/**
 * A record as the event it carries, so that a switch on its type narrows its body. Sound because every
 * record is decoded with its body validated against its type's schema (spec validateBody).
 */
export function eventOf(r: ReplayRecord): JournalEvent {
  return { type: r.type, txId: r.txId, body: r.body } as JournalEvent;
}
