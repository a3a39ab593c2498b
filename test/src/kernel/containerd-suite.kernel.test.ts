// containerd's own snapshotter testsuite (containerd 1.6.20's snapshots/testsuite, built by
// ../shared/containerd/build-suite.sh on the host and cached; see test/CONTAINERD.md) on the real kernel.
// Each suite test is one uvu test here, so the runner's `N passed, N failed, N skipped` counts them: a PASS
// passes, a FAIL fails with the suite's log, a test the suite skips by design (Rename) is skipped with the
// suite's reason, and a test the suite never reported fails.
//
//  - thinjournal: one run of the suite with `-proxy.spawn=packages/snapshotter/bin/spawn-for-suite.sh`
//    (the suite starts `spawn-for-suite.sh <socket> <root>` per test, a fresh daemon and home each time, and
//    SIGINTs it after the test). Skipped, saying so, while that wrapper or the CLI's `snapshotter` command is
//    missing. THINJOURNAL_SUITE_SPAWN=CMD runs that instead (same contract), with THINJOURNAL_SUITE_NAME as the
//    requests' snapshotter name: test/containerd/spawn-containerd.sh proves this mode on containerd's own.
//  - peers (THINJOURNAL_SUITE_PEER=devmapper,overlayfs,native, every suite test; "none" or unset: none, so a
//    by-hand `pnpm test` stays within the runner's per-run limit; "auto", which .ci/run sets: devmapper
//    without 128LayersMount while the service is missing, so that CI proves this harness on the real kernel
//    meanwhile, and none once it is there, thinjournal's own run being the proof — a full devmapper run
//    takes ≈ 35 min under emulation, 20 of them 128LayersMount): containerd's own
//    snapshotters, reached through containerd's socket exactly as the suite reaches a proxy plugin. The
//    suite's tests reuse fixed keys and containerd keeps what a test leaves, so each suite test gets its own
//    containerd (and, for devmapper, its own loopback thin pool made with dmsetup).
//
// By hand (from the worktree, after `node test/containerd/prepare.mjs` on the host):
//   DMVM_MEM=2048 ../shared/dmvm/run-in-vm.sh 'node test/uvu-child.mjs test/dist/kernel/containerd-suite.kernel.test.js'
//   THINJOURNAL_SUITE_ONLY='Basic,Walk' … limits both runs to those suite tests.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { rmSync } from 'node:fs';
import { kernelUnavailable } from './kernel-harness.js';

type Result = { status: 'PASS' | 'FAIL' | 'SKIP'; seconds: number; log: string };
// test/containerd/kit.mjs is plain JavaScript shared with the benchmark.
const kit: any = await import(new URL('../../containerd/kit.mjs', import.meta.url).href);

const why = await kernelUnavailable();
const all: string[] = kit.suiteTestNames();
const only = (process.env.THINJOURNAL_SUITE_ONLY ?? '').split(',').filter(Boolean);
const names = only.length ? all.filter((n) => only.includes(n)) : all;
const anchored = (ns: string[]) => `TestProxySnapshotterSuite/^(${ns.join('|')})$`;

/** One uvu test per suite test, named `<label>/<Name>`. */
function register(label: string, results: Map<string, Result>, ran: string[]): void {
  for (const name of ran) {
    const r = results.get(name);
    const title = `${label}/${name}`;
    if (r?.status === 'SKIP') {
      const reason = kit.skipReason(r);
      console.log(`  ${title}: skipped by the suite: ${reason}`);
      test.skip(`${title} (skipped by the suite: ${reason})`, () => {});
      continue;
    }
    test(title, () => {
      assert.ok(r, `the suite reported no result for ${name}`);
      assert.is(r!.status, 'PASS', `${name} failed:\n${r!.log}`);
    });
  }
}

function score(label: string, results: Map<string, Result>, ran: string[], seconds: number): void {
  const c = { PASS: 0, FAIL: 0, SKIP: 0, missing: 0 };
  for (const n of ran) c[results.get(n)?.status ?? 'missing']++;
  console.log(`containerd testsuite, ${label}: ${c.PASS} passed, ${c.FAIL} failed, ${c.SKIP} skipped${c.missing ? `, ${c.missing} not reported` : ''} of ${ran.length} (${seconds.toFixed(0)} s)`);
}

async function runThinjournal(bin: string): Promise<void> {
  const other = process.env.THINJOURNAL_SUITE_SPAWN;
  const svc = other ? { ok: true } : kit.thinjournalService();
  const spawnCmd: string = other ? path.resolve(other) : kit.SPAWN_WRAPPER;
  const label = other ? `spawn ${path.basename(other)} (${process.env.THINJOURNAL_SUITE_NAME ?? 'thinjournal'})` : 'thinjournal';
  if (!svc.ok) {
    console.log(`containerd testsuite against thinjournal skipped: ${svc.why}; it runs \`${path.relative(kit.ROOT, kit.SPAWN_WRAPPER)} <socket> <root>\` per suite test`);
    test.skip(`thinjournal: containerd's snapshotter testsuite (${svc.why})`, () => {});
    return;
  }
  const nameArgs = process.env.THINJOURNAL_SUITE_NAME ? [`-proxy.name=${process.env.THINJOURNAL_SUITE_NAME}`] : [];
  // A daemon's first start in the guest loads its modules over 9p: the dial waits longer than the suite's default.
  const r = await kit.runSuite(bin, ['-test.parallel', '1', '-test.timeout', '60m', '-test.run', anchored(names), `-proxy.spawn=${spawnCmd}`, '-proxy.dialtimeout=900s', ...nameArgs]);
  const results: Map<string, Result> = kit.parseSuiteOutput(r.out);
  score(label, results, names, r.seconds);
  register(label, results, names);
  test(`${label}: the suite process exits 0 exactly when no suite test failed`, () => {
    const failed = [...results.values()].some((x) => x.status === 'FAIL') || results.size < names.length;
    assert.is(r.code === 0, !failed, `exit ${r.code ?? r.signal}`);
  });
}

/** One suite test against containerd's snapshotter `peer`, on a containerd (and pool) of its own. */
async function runPeerTest(bin: string, peer: string, name: string): Promise<{ results: Map<string, Result>; seconds: number }> {
  const dir = kit.tmpDir(`tjsuite-${peer}-`);
  const pool = peer === 'devmapper' ? await kit.makeThinPool(path.join(dir, 'pool'), `tjsuite${process.pid}-${name.toLowerCase()}`.slice(0, 60)) : null;
  let ctd: any = null;
  const t = Date.now();
  try {
    ctd = await kit.startContainerd(path.join(dir, 'ctd'), pool ? { devmapper: { pool: pool.name, root: path.join(dir, 'devmapper'), baseImageSize: '64MB' } } : {});
    const r = await kit.runSuite(bin, ['-test.parallel', '1', '-test.timeout', '20m', '-test.run', anchored([name]), `-proxy.address=${ctd.sock}`, `-proxy.name=${peer}`]);
    return { results: kit.parseSuiteOutput(r.out), seconds: (Date.now() - t) / 1000 };
  } finally {
    await ctd?.stop();
    await pool?.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runPeer(bin: string, peer: string, leaveOut: Map<string, string>): Promise<void> {
  const results = new Map<string, Result>();
  const t = Date.now();
  for (const name of names) {
    if (leaveOut.has(name)) {
      results.set(name, { status: 'SKIP', seconds: 0, log: leaveOut.get(name)! });
      continue;
    }
    try {
      const one = await runPeerTest(bin, peer, name);
      for (const [k, v] of one.results) results.set(k, v);
    } catch (err) {
      results.set(name, { status: 'FAIL', seconds: 0, log: `could not run it: ${(err as Error).message}` });
    }
  }
  score(`containerd's ${peer} (peer, through containerd's socket)`, results, names, (Date.now() - t) / 1000);
  register(`peer ${peer}`, results, names);
}

if (why) {
  console.log(`containerd testsuite kernel tests skipped: ${why}`);
  test.skip('containerd testsuite', () => {});
} else {
  const { bin, why: noBin } = kit.suiteBinary();
  const missing: string[] = kit.missingTools();
  if (!bin) {
    console.log(`containerd testsuite skipped: ${noBin}`);
    test.skip(`containerd testsuite (${noBin})`, () => {});
  } else {
    await runThinjournal(bin);
    const asked = process.env.THINJOURNAL_SUITE_PEER ?? 'none';
    const auto = asked === 'auto';
    const peers = (auto ? (kit.thinjournalService().ok || process.env.THINJOURNAL_SUITE_SPAWN ? 'none' : 'devmapper') : asked).split(',').filter((p) => p && p !== 'none');
    if (!peers.length) console.log(`containerd testsuite peers: none (THINJOURNAL_SUITE_PEER=${asked}; devmapper,overlayfs,native or auto run them)`);
    if (peers.length && missing.length) {
      console.log(`containerd peers skipped: missing ${missing.join(', ')} (node test/containerd/prepare.mjs installs them)`);
      test.skip(`containerd peers (missing ${missing.join(', ')})`, () => {});
    } else {
      await kit.ensureCgroup2();
      // The automatic peer run leaves out 128LayersMount: ≈ 20 min of the ≈ 35 a full devmapper run takes
      // under the guest's emulation. Naming the peer runs every test.
      const leaveOut = new Map<string, string>();
      if (auto && names.includes('128LayersMount')) {
        leaveOut.set('128LayersMount', 'left out of the automatic peer run (≈ 20 min under emulation); THINJOURNAL_SUITE_PEER=devmapper runs it');
      }
      for (const p of peers) await runPeer(bin, p, leaveOut);
    }
  }
}
test.run();
