// The conformance suite against ModelBackend (runs everywhere).
import { test } from 'uvu';
import { defineConformance } from './cases.js';
import { modelHarness } from './model-harness.js';

defineConformance(test, modelHarness);
test.run();
