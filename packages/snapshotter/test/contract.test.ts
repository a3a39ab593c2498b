// The snapshotter's contract over gRPC on a unix socket, on the ModelBackend (no kernel needed).
import { test } from 'uvu';
import { ModelBackend } from '@thinjournal/dm';
import { defineContract, type ContractHarness } from './contract.js';

const OPTIONS = ['dm.loopdatasize=1G', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];

defineContract(test, async () => {
  const backend = new ModelBackend();
  const h: ContractHarness = {
    kind: 'model',
    backend,
    options: OPTIONS,
    async hold(devicePath) {
      const release = backend.hold(devicePath);
      return async () => release();
    },
  };
  return h;
});

test.run();
