/** The model applied to journal records, where a record the model refuses is corruption of the journal. */
import { ThinjournalError, chainError, type ChainProblem, type ReplayRecord } from '@thinjournal/spec';
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
