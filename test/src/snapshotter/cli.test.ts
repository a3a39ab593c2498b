// `thinjournal snapshotter`: the CLI's registration, its usage errors, SIGTERM draining and closing, and the
// journal's other commands reading what the daemon wrote — in process, on the ModelBackend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelBackend } from '../../../packages/dm/dist/src/index.js';
import { main, EXIT, type Io } from '../../../packages/cli/dist/src/index.js';
import { Conn } from '../../../packages/snapshotter/dist/test/contract.js';

const OPTS = ['--opt', 'dm.loopdatasize=1G', '--opt', 'dm.loopmetadatasize=16M', '--opt', 'dm.basesize=64M'];

function capture(backend?: ModelBackend): Io & { out: () => string; err: () => string } {
  let out = '', err = '';
  return { stdout: { write: (s: string) => (out += s), isTTY: false }, stderr: { write: (s: string) => (err += s), isTTY: false }, env: {}, ...(backend ? { backend } : {}), out: () => out, err: () => err };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('usage: --socket is required; the command is listed in --help', async () => {
  const io = capture(new ModelBackend());
  assert.is(await main(['snapshotter', '--home', '/tmp/x'], io), EXIT.USAGE);
  assert.match(io.err(), /--socket PATH is required/);
  const help = capture();
  assert.is(await main(['--help'], help), EXIT.OK);
  assert.match(help.out(), /snapshotter +serve containerd's snapshotter API/);
});

test('serves until SIGTERM, then drains and exits 0; a restart serves the same snapshots; dump shows them', async () => {
  const backend = new ModelBackend();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tjsc-'));
  const home = path.join(dir, 'home');
  const socket = path.join(dir, 'snap.sock');
  let io = capture(backend);
  let run = main(['snapshotter', '--home', home, '--socket', socket, ...OPTS], io);
  await until(() => existsSync(socket), 'the socket');
  let c = new Conn(socket);
  await c.call('Prepare', { key: 'a key/with slashes', parent: '' });
  c.close();
  process.emit('SIGTERM', 'SIGTERM');
  assert.is(await run, EXIT.OK, io.err());
  assert.match(io.err(), /SIGTERM: draining/);
  assert.not.ok(existsSync(socket), 'the socket is removed at exit');
  io = capture(backend);
  run = main(['snapshotter', '--home', home, '--socket', socket, ...OPTS], io);
  await until(() => existsSync(socket), 'the socket');
  c = new Conn(socket);
  const st = await c.call<{ info: { kind: string } }>('Stat', { key: 'a key/with slashes' });
  assert.is(st.info.kind, 'ACTIVE');
  c.close();
  process.emit('SIGINT', 'SIGINT');
  assert.is(await run, EXIT.OK, io.err());
  const dump = capture(backend);
  assert.is(await main(['dump', '--home', home, '--type', 'SnapshotPrepared', '--json'], dump), EXIT.OK, dump.err());
  const recs = dump.out().trim().split('\n').map((l) => JSON.parse(l));
  assert.is(recs.length, 1);
  assert.is(recs[0].body.key, 'a key/with slashes');
  const ls = capture(backend);
  assert.is(await main(['ls', '--home', home, '--json'], ls), EXIT.OK, ls.err());
  const devs = JSON.parse(ls.out()) as { hash: string; snapshot?: { key: string; kind: string } }[];
  assert.equal(devs.filter((d) => d.snapshot).map((d) => d.snapshot), [{ key: 'a key/with slashes', kind: 'active', parent: null }]);
  const lineage = capture(backend);
  assert.is(await main(['lineage', '--home', home], lineage), EXIT.OK, lineage.err());
  assert.match(lineage.out(), /snap-\d+ #\d+ "a key\/with slashes" \(active\)/);
  const verify = capture(backend);
  assert.is(await main(['verify', '--home', home], verify), EXIT.OK, verify.err() + verify.out());
});

test.run();
