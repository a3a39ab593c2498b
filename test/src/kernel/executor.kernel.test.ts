// The native plan executor (native/src/plan.cc through KernelBackend.executePlan) on a real device-mapper:
// the same cases as the TypeScript executor on ModelBackend (packages/dm/test/plan-cases.ts).
import { test } from 'uvu';
import { definePlanCases } from '../../../packages/dm/dist/test/plan-cases.js';
import { KernelHarness, kernelUnavailable } from './kernel-harness.js';

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel plan executor tests skipped: ${why}`);
  test.skip('native plan executor', () => {});
} else {
  definePlanCases(test, () => KernelHarness.create());
}
test.run();
