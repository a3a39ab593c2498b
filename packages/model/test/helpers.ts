// A small driver for tests: decide, then evolve what was decided, with commit/rollback of the pending transaction.
import * as assert from 'uvu/assert';
import type { JournalEvent } from '@thinjournal/spec';
import {
  decide, evolve, initialState, stateHash, parseOptions, effectiveOptions, type Command, type State, type OptionsEnv,
} from '../src/index.js';

export const UUID = '6f1c2a5e-1b8e-4c61-9a49-2f8f9ad3c0b7';

export class Harness {
  state: State = initialState;
  readonly log: JournalEvent[] = [];

  apply(events: readonly JournalEvent[]): void {
    for (const e of events) {
      this.state = evolve(this.state, e);
      this.log.push(e);
    }
  }
  /** decide + evolve; returns the events. */
  run(c: Command): readonly JournalEvent[] {
    const events = decide(this.state, c);
    this.apply(events);
    return events;
  }
  commit(): void {
    assert.ok(this.state.pending, 'a transaction is pending');
    this.apply([{ type: 'TransactionCommitted', txId: this.state.pending!.txId, body: {} }]);
  }
  rollback(reason = 'test'): void {
    assert.ok(this.state.pending, 'a transaction is pending');
    this.apply([{ type: 'TransactionRolledBack', txId: this.state.pending!.txId, body: { reason } }]);
  }
  /** run + commit. */
  op(c: Command): readonly JournalEvent[] {
    const ev = this.run(c);
    if (this.state.pending) this.commit();
    return ev;
  }
  /** decide must throw `code`, and the state must be unchanged. */
  refuses(c: Command, code: string, fragment?: string | RegExp): Error {
    const before = this.state;
    const hash = stateHash(before);
    try {
      decide(this.state, c);
    } catch (e) {
      const err = e as Error & { code?: string };
      assert.is(err.code, code, `${JSON.stringify(c)} → ${err.message}`);
      if (typeof fragment === 'string') assert.ok(err.message.includes(fragment), `"${fragment}" in: ${err.message}`);
      else if (fragment) assert.match(err.message, fragment);
      assert.is(this.state, before);
      assert.is(stateHash(this.state), hash);
      return err;
    }
    assert.unreachable(`${JSON.stringify(c)} was accepted`);
    throw new Error('unreachable');
  }
}

export function initCommand(opts: string[] = [], env: OptionsEnv = {}): Command {
  const o = parseOptions(opts, env);
  return {
    type: 'initPool', poolName: 'docker-8:1-1234-pool', dataDevice: '/dev/loop0', metadataDevice: '/dev/loop1', loopback: o.loopback,
    dataSize: o.loopDataSize, metadataSize: o.loopMetadataSize, blockSize: o.blockSize, options: effectiveOptions(o),
  };
}

/** A pool with a committed xfs base image (10 GiB, device id 1), txId 1. */
export function withBase(opts: string[] = [], env: OptionsEnv = {}): Harness {
  const h = new Harness();
  h.op(initCommand(opts, env));
  h.op({ type: 'createBaseImage', size: 10 * 1024 ** 3, fs: 'xfs', uuid: UUID });
  return h;
}
