// Filesystem helpers without a kernel: superblock UUIDs (synthesised superblocks, then real ones made by
// mkfs on regular files and checked against blkid), mkfs command lines and input checks.
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { access, constants as fsConstants, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkMkfsOptions, devNumbers, fsUuid, fsUuidFromSuperblock, mkfs, mkfsCommand, probeFsType, EXT4_UUID_OFFSET, XFS_UUID_OFFSET } from '../src/index.js';

const U = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0';
const UBYTES = Buffer.from(U.replace(/-/g, ''), 'hex');

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).name;
  }
  return undefined;
}

test('superblock offsets: ext4 s_uuid at 1024+0x68, xfs sb_uuid at 32; none → null', () => {
  assert.is(EXT4_UUID_OFFSET, 1128);
  assert.is(XFS_UUID_OFFSET, 32);
  const ext = Buffer.alloc(4096);
  ext.writeUInt16LE(0xef53, 1024 + 56);
  UBYTES.copy(ext, 1024 + 104);
  assert.is(fsUuidFromSuperblock(ext), U);
  const xfs = Buffer.alloc(4096);
  xfs.write('XFSB', 0, 'latin1');
  UBYTES.copy(xfs, 32);
  assert.is(fsUuidFromSuperblock(xfs), U);
  assert.is(fsUuidFromSuperblock(Buffer.alloc(4096)), null);
  assert.is(fsUuidFromSuperblock(ext.subarray(0, 1100)), null, 'too short for the ext4 magic');
  assert.is(fsUuidFromSuperblock(xfs.subarray(0, 40)), null, 'too short for the uuid');
});

test('mkfs input checks: uuid ERR_DM_ARG, args and type TypeError', () => {
  assert.is(code(() => checkMkfsOptions('ext4', { uuid: U, args: ['-L', 'x'] })), undefined);
  for (const bad of [U.toUpperCase(), '', 'x', U + ' ', '00000000-0000-0000-0000-000000000000', 1]) {
    assert.is(code(() => checkMkfsOptions('xfs', { uuid: bad as string })), 'ERR_DM_ARG', String(bad));
  }
  for (const bad of ['-q', [2], ['a\0']]) assert.is(code(() => checkMkfsOptions('ext4', { args: bad as string[] })), 'TypeError');
  assert.is(code(() => checkMkfsOptions('vfat')), 'TypeError');
});

test('mkfs command lines: our options, the caller args, the uuid, the device', () => {
  assert.equal(mkfsCommand('/dev/x', 'ext4', { uuid: U, args: ['-L', 'l'] }), {
    tool: 'mkfs.ext4', args: ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-L', 'l', '-U', U, '/dev/x'],
  });
  assert.equal(mkfsCommand('/dev/x', 'xfs', { uuid: U }), { tool: 'mkfs.xfs', args: ['-q', '-f', '-m', `uuid=${U}`, '/dev/x'] });
  assert.equal(mkfsCommand('/dev/x', 'xfs'), { tool: 'mkfs.xfs', args: ['-q', '-f', '/dev/x'] });
});

async function onPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    if (await access(path.join(dir, tool), fsConstants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

function blkid(file: string, tag: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('blkid', ['-p', '-o', 'value', '-s', tag, file], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
  });
}

// mkfs.ext4 and mkfs.xfs format regular files too, and blkid probes them: the real superblocks, no kernel.
for (const [type, tool, bytes] of [['ext4', 'mkfs.ext4', 8 << 20], ['xfs', 'mkfs.xfs', 300 << 20]] as const) {
  test(`${type} on a file: fsUuid equals the uuid given to mkfs and blkid's`, async () => {
    const missing = [];
    for (const t of [tool, 'blkid']) if (!(await onPath(t))) missing.push(t);
    if (missing.length) {
      console.log(`  ${type} file test skipped: ${missing.join(', ')} not on PATH`);
      return;
    }
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tj-fs-'));
    try {
      const file = path.join(dir, 'img');
      await writeFile(file, '');
      await truncate(file, bytes);
      await mkfs(file, type, { uuid: U });
      assert.is(await probeFsType(file), type);
      assert.is(await fsUuid(file), U);
      assert.is(await blkid(file, 'UUID'), U);
      await mkfs(file, type);
      const u = await fsUuid(file);
      assert.is.not(u, U);
      assert.is(await blkid(file, 'UUID'), u);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('fsUuid of a file without a filesystem: ERR_FS_UNKNOWN; of a missing one: ERR_KERNEL ENOENT', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tj-fs-'));
  try {
    const file = path.join(dir, 'zero');
    await writeFile(file, Buffer.alloc(8192));
    const e1 = await fsUuid(file).then(() => null, (e: { code?: string }) => e.code);
    assert.is(e1, 'ERR_FS_UNKNOWN');
    const e2 = await fsUuid(path.join(dir, 'nope')).then(() => null, (e: { code?: string; errnoName?: string }) => `${e.code}/${e.errnoName}`);
    assert.is(e2, 'ERR_KERNEL/ENOENT');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('devNumbers splits a dev_t as the kernel encodes it (small and large minors)', () => {
  assert.equal(devNumbers(statSync('/dev/null').rdev), { major: 1, minor: 3 });
  const major = 259, minor = 300;
  const dev = (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);
  assert.equal(devNumbers(dev), { major, minor });
});

test.run();
