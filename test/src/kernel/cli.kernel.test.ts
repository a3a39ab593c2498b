// The thinjournal CLI on a real kernel: each call is main(argv, io) with the kernel backend, opening the driver
// and closing it as a short-lived process would (a mounted device stays mounted between calls). Exit codes,
// `CODE:` on stderr, --json parsed back, and the kernel checked directly after each change.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { KernelBackend } from '../../../packages/dm/dist/src/index.js';
import { EXIT } from '../../../packages/cli/dist/src/index.js';
import { cliOn, kernelUnavailable } from './kernel-harness.js';

const BIN = fileURLToPath(new URL('../../../packages/cli/bin/thinjournal.js', import.meta.url));

/** A real reader process (its own LevelDB), as an operator's `thinjournal dump` beside the daemon. */
function reader(args: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => resolve({ code, err }));
  });
}

function fingerprint(dir: string): string {
  const h = createHash('sha256');
  for (const n of readdirSync(dir).sort()) { h.update(n + '\0'); h.update(readFileSync(path.join(dir, n))); }
  return h.digest('hex');
}

const SMALL = ['--opt', 'dm.loopdatasize=256M', '--opt', 'dm.loopmetadatasize=16M', '--opt', 'dm.basesize=64M', '--opt', 'dm.fs=ext4'];

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel CLI tests skipped: ${why}`);
  test.skip('kernel CLI', () => {});
} else {
  test('CLI device commands, audit and recovery on a real pool', async () => {
    const backend = new KernelBackend();
    const top = mkdtempSync(path.join(os.tmpdir(), 'tjc-'));
    const home = path.join(top, 'home');
    const { run, ok } = cliOn(backend, home);
    try {
      const init = await ok('init', ...SMALL);
      assert.ok(String(init.poolName).endsWith('-pool'));
      assert.ok(await backend.info(init.poolName), 'pool device exists');

      await ok('create', 'l1');
      // Readers never take the writer's lock nor write: device operations go on while dump and ls read, and a
      // reader alone leaves every byte of the journal as it was.
      for (let i = 0; i < 2; i++) {
        const reads = Promise.all([reader(['dump', '--home', home]), reader(['ls', '--home', home])]);
        await ok('create', `r${i}`);
        for (const r of await reads) assert.is(r.code, 0, r.err);
      }
      const jdir = path.join(home, 'journal');
      const before = fingerprint(jdir);
      for (const args of [['verify'], ['dump'], ['ls'], ['recover', '--dry-run']]) {
        const r = await reader([...args, '--home', home]);
        assert.is(r.code, 0, `${args.join(' ')}: ${r.err}`);
        assert.is(fingerprint(jdir), before, `${args.join(' ')} changed the journal`);
      }
      await ok('rm', 'r0');
      await ok('rm', 'r1');
      const c1 = await ok('snapshot', 'c1', '--from', 'l1');
      assert.ok(Number.isInteger(c1.deviceId));
      const m = await ok('mount', 'c1');
      assert.is(m.path, path.join(home, 'mnt', 'c1'));
      assert.ok(await backend.mounted(m.path), 'mounted after the call returned');
      writeFileSync(path.join(m.path, 'note'), 'kept\n');
      const st = await ok('status', 'c1');
      assert.is(st.deviceId, c1.deviceId);
      assert.ok(st.mappedSectors > 0, 'a snapshot of a formatted layer maps sectors');

      const busy = await run('rm', 'l1');
      assert.is(busy.code, EXIT.ERROR);
      assert.match(busy.err, /ERR_DEVICE_BUSY/);
      const dumpBefore = (await run('dump', '--json')).out.trim().split('\n').length;
      const bad = await run('create', 'a/b');
      assert.is(bad.code, EXIT.USAGE, 'a malformed id is refused before anything is done');
      assert.match(bad.err, /ERR_BAD_ID/);
      assert.is((await run('dump', '--json')).out.trim().split('\n').length, dumpBefore, 'nothing journaled');
      assert.is((await run('create')).code, EXIT.USAGE);

      const dump = (await run('dump')).out.trim().split('\n').map((l) => JSON.parse(l) as { type: string; body: { hash?: string } });
      assert.ok(dump.some((r) => r.type === 'DeviceMounted' && r.body.hash === 'c1'));
      const v = await run('verify', '--kernel', '--json');
      assert.is(v.code, EXIT.OK, v.err + v.out);
      const plan = await ok('recover', '--dry-run');
      assert.equal(plan.plan?.steps ?? plan.steps, []);
      const tree = await ok('lineage');
      const l1 = JSON.stringify(tree);
      assert.match(l1, /"hash":"l1".*"hash":"c1"/);

      await ok('umount', 'c1');
      assert.is(await backend.mounted(m.path), null);
      // the data is in the pool: mount again and read it
      const again = await ok('mount', 'c1');
      assert.is(readFileSync(path.join(again.path, 'note'), 'utf8'), 'kept\n');
      await ok('umount', 'c1');
      await ok('rm', 'c1');
      await ok('rm', 'l1');
      assert.equal((await ok('ls')).map((d: { hash: string }) => d.hash).sort(), ['']);

      await ok('shutdown');
      assert.is(await backend.info(init.poolName), null, 'shutdown removed the pool');
      // the next call re-creates the pool from the journal (recovery) and checks the base image
      const s2 = await ok('status');
      assert.is(s2.poolName, init.poolName);
      assert.ok(await backend.info(init.poolName));
    } finally {
      await run('shutdown').catch(() => {});
      rmSync(top, { recursive: true, force: true });
    }
  });
}
test.run();
