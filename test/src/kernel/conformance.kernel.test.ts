// The conformance suite against KernelBackend on a real device-mapper (the dmvm guest on this project's
// machines; directly as root where /dev/mapper/control exists). See test/kernel.mjs.
import { test } from 'uvu';
import { defineConformance } from '../conformance/cases.js';
import { KernelHarness, kernelUnavailable } from './kernel-harness.js';

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel conformance skipped: ${why}`);
  test.skip('kernel conformance', () => {});
} else {
  defineConformance(test, () => KernelHarness.create());
}
test.run();
