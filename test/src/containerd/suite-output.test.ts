// The reading of containerd's testsuite output (test/containerd/kit.mjs), on output shaped as `go test -v`
// prints it: Go 1.14+ streams a test's log between its `=== RUN`/`=== CONT` line and its result line, older
// Go indents it under the result line; parallel tests PAUSE and CONT. And the suite's test names come from
// the packaged sources when they are installed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';

const kit: any = await import(new URL('../../containerd/kit.mjs', import.meta.url).href);

const streamed = [
  '=== RUN   TestProxySnapshotterSuite',
  '=== RUN   TestProxySnapshotterSuite/Basic',
  '=== PAUSE TestProxySnapshotterSuite/Basic',
  '=== RUN   TestProxySnapshotterSuite/Rename',
  '=== PAUSE TestProxySnapshotterSuite/Rename',
  '=== CONT  TestProxySnapshotterSuite/Basic',
  '    helpers_unix.go:33: unmount /tmp/x/work/preparing',
  '    --- PASS: TestProxySnapshotterSuite/Basic (3.68s)',
  '=== CONT  TestProxySnapshotterSuite/Rename',
  '    issues.go:118: rename test still fails on some kernels with overlay',
  '    --- SKIP: TestProxySnapshotterSuite/Rename (0.03s)',
  '=== RUN   TestProxySnapshotterSuite/Walk',
  '    testsuite.go:512: unexpected error: rpc error: code = NotFound',
  '    --- FAIL: TestProxySnapshotterSuite/Walk (0.50s)',
  '--- FAIL: TestProxySnapshotterSuite (4.21s)',
  'FAIL',
].join('\n');

test('streamed logs: PASS, SKIP with its reason, FAIL with its log; the parent test is not a suite test', () => {
  const r = kit.parseSuiteOutput(streamed);
  assert.equal([...r.keys()], ['Basic', 'Rename', 'Walk']);
  assert.is(r.get('Basic').status, 'PASS');
  assert.is(r.get('Basic').seconds, 3.68);
  assert.is(r.get('Rename').status, 'SKIP');
  assert.is(kit.skipReason(r.get('Rename')), 'rename test still fails on some kernels with overlay');
  assert.is(r.get('Walk').status, 'FAIL');
  assert.match(r.get('Walk').log, 'code = NotFound');
});

test('logs indented under the result line (older Go) belong to that test', () => {
  const r = kit.parseSuiteOutput(['    --- SKIP: TestProxySnapshotterSuite/Rename (0.00s)', '        issues.go:118: not on this kernel', '    --- PASS: TestProxySnapshotterSuite/Chown (1.00s)'].join('\n'));
  assert.is(kit.skipReason(r.get('Rename')), 'not on this kernel');
  assert.is(r.get('Chown').log, '');
});

test('a skip without a log line has a stated reason', () => {
  const r = kit.parseSuiteOutput('    --- SKIP: TestProxySnapshotterSuite/X (0.00s)');
  assert.is(kit.skipReason(r.get('X')), 'no reason given');
});

test("the suite's test names from containerd's packaged sources", () => {
  if (!existsSync('/usr/share/gocode/src/github.com/containerd/containerd/snapshots/testsuite/testsuite.go')) {
    console.log('  (golang-github-containerd-containerd-dev is not installed: names not checked)');
    return;
  }
  const names: string[] = kit.suiteTestNames();
  assert.ok(names.length >= 20, names.join(' '));
  for (const n of ['Basic', 'Rename', '128LayersMount']) assert.ok(names.includes(n), n);
  assert.is(new Set(names).size, names.length);
});

test.run();
