// The plan executor on ModelBackend (the TypeScript executor); the same cases run natively in the guest
// (test/src/kernel/executor.kernel.test.ts).
import { test } from 'uvu';
import { ModelBackend } from '../src/index.js';
import { definePlanCases, type PlanFixture } from './plan-cases.js';

let n = 0;
definePlanCases(test, async (): Promise<PlanFixture> => {
  const backend = new ModelBackend();
  const prefix = `tjp${n++}`;
  let k = 0;
  return {
    backend,
    name: (s) => `${prefix}-${s}`,
    makeFile: async (bytes) => {
      const p = `/model/files/f${k++}`;
      backend.addFile(p, bytes);
      return p;
    },
    makeDir: async () => {
      const p = `/model/dirs/d${k++}`;
      backend.mkdir(p);
      return p;
    },
    cleanup: async () => {},
  };
});

test.run();
