// Runs uvu test files in this process and reports exact counts.
//
// uvu's own summary ("Total / Passed / Skipped") is coloured text meant for people; this bootstrap runs
// the queued suites itself (the same contract as uvu's `exec`: each queued runner resolves to
// [errors|true, passed, skipped, total]) and prints one machine line per file:
//   @@thinjournal-result {"file":…,"passed":N,"failed":N,"skipped":N,"error":…}
// It is used directly by test/run.mjs and, unchanged, inside the device-mapper guest.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

export const RESULT_MARK = '@@thinjournal-result ';

async function runFile(file) {
  globalThis.UVU_DEFER = 1;
  globalThis.UVU_INDEX = 0;
  globalThis.UVU_QUEUE = [[path.relative(process.cwd(), file)]];
  const result = { file, passed: 0, failed: 0, skipped: 0, error: null };
  try {
    await import(pathToFileURL(path.resolve(file)).href);
  } catch (err) {
    result.failed++;
    result.error = `could not load: ${err && err.stack || err}`;
    process.stdout.write(`\n  ✘ ${file}: ${result.error}\n`);
    return result;
  }
  for (const group of globalThis.UVU_QUEUE) {
    const name = group.shift();
    if (name != null) process.stdout.write(`${name}\n`);
    for (const run of group) {
      const [errs, passed, skipped, total] = await run();
      result.passed += passed;
      result.failed += total - passed;
      result.skipped += skipped;
      if (errs !== true) process.stdout.write(`\n${errs}\n`);
    }
  }
  return result;
}

const files = process.argv.slice(2);
for (const file of files) {
  const r = await runFile(file);
  process.stdout.write(`\n${RESULT_MARK}${JSON.stringify(r)}\n`);
}
