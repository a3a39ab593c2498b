// Filesystem geometry without a kernel: the size fields of synthesised superblocks, then of real ones made by
// mkfs on regular files (checked against dumpe2fs), and the grow prediction against resize2fs run offline on
// image files at odd sizes. The online tools on a real kernel: test/src/kernel/parity.kernel.test.ts.
import { execFile } from 'node:child_process';
import { access, constants as fsConstants, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fsGeometry, fsGeometryFromSuperblock, fsGrowTarget, fsNeedsGrow, type FsGeometry } from '../src/index.js';

const M = 2 ** 20;

function sh(tool: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(tool, args, { env: { ...process.env, LC_ALL: 'C' } }, (err, out, errOut) => (err ? reject(new Error(`${tool} ${args.join(' ')}: ${errOut}`)) : resolve(out))));
}

async function have(tool: string): Promise<boolean> {
  for (const d of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    try {
      await access(path.join(d, tool), fsConstants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

test('ext4 superblock: size fields at their offsets (32-bit and 64bit blocks count)', () => {
  const h = Buffer.alloc(4096);
  const sb = 1024;
  h.writeUInt16LE(0xef53, sb + 56);
  h.writeUInt32LE(262144, sb + 0x04);
  h.writeUInt32LE(1, sb + 0x14);
  h.writeUInt32LE(0, sb + 0x18); // 1 KiB blocks
  h.writeUInt32LE(8192, sb + 0x20);
  h.writeUInt32LE(2048, sb + 0x28);
  h.writeUInt16LE(256, sb + 0x58);
  const g = fsGeometryFromSuperblock(h)!;
  assert.equal(g, { type: 'ext4', blockSize: 1024, blocks: 262144, groupBlocks: 8192, firstBlock: 1, minTailBlocks: 512 + 52, alignBlocks: 4, maxBlocks: 2 ** 32 - 1 });
  h.writeUInt32LE(0x80, sb + 0x60); // INCOMPAT_64BIT
  h.writeUInt32LE(2, sb + 0x150);
  h.writeUInt32LE(2, sb + 0x18); // 4 KiB
  assert.is(fsGeometryFromSuperblock(h)!.blocks, 2 * 2 ** 32 + 262144);
  assert.is(fsGeometryFromSuperblock(h)!.alignBlocks, 1);
  h.writeUInt32LE(0, sb + 0x20);
  assert.is(fsGeometryFromSuperblock(h), null, 'zero blocks per group');
  assert.is(fsGeometryFromSuperblock(Buffer.alloc(4096)), null, 'no superblock');
});

test('xfs superblock: big-endian size fields', () => {
  const h = Buffer.alloc(4096);
  h.write('XFSB', 0, 'latin1');
  h.writeUInt32BE(4096, 4);
  h.writeBigUInt64BE(81920n, 8);
  h.writeUInt32BE(20480, 84);
  assert.equal(fsGeometryFromSuperblock(h), { type: 'xfs', blockSize: 4096, blocks: 81920, groupBlocks: 20480, firstBlock: 0, minTailBlocks: 64, alignBlocks: 1, maxBlocks: Number.MAX_SAFE_INTEGER });
});

test('fsGrowTarget: the device size in blocks, page-aligned, a too-short last group left out, never a shrink', () => {
  const g: FsGeometry = { type: 'ext4', blockSize: 1024, blocks: 65536, groupBlocks: 8192, firstBlock: 1, minTailBlocks: 564, alignBlocks: 4, maxBlocks: 2 ** 32 - 1 };
  assert.is(fsGrowTarget(g, 64 * M), 65536, 'the device it was made on: nothing to grow');
  assert.not.ok(fsNeedsGrow(g, 64 * M));
  assert.is(fsGrowTarget(g, 64 * M + 4096), 65537, 'a 3-block tail is dropped, the partial last group completed');
  assert.is(fsGrowTarget(g, 64 * M + 600 * 1024), 66136);
  assert.is(fsGrowTarget(g, 64 * M + 1023), 65536, 'less than a page more: the same');
  assert.is(fsGrowTarget(g, 32 * M), 65536, 'a smaller device never shrinks it');
  assert.ok(fsNeedsGrow(g, 128 * M));
});

const HAVE_EXT4 = (await have('mkfs.ext4')) && (await have('resize2fs')) && (await have('e2fsck')) && (await have('dumpe2fs'));

async function dumpe2fs(img: string): Promise<Record<string, string>> {
  const out = await sh('dumpe2fs', ['-h', img]);
  return Object.fromEntries(out.split('\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]));
}

if (HAVE_EXT4) {
  test('real mkfs.ext4 images: the geometry read is what dumpe2fs says', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tjg-'));
    try {
      for (const size of [64 * M, 256 * M, 1024 * M]) {
        const img = path.join(dir, `e${size}`);
        await writeFile(img, '');
        await truncate(img, size);
        await sh('mkfs.ext4', ['-q', '-F', img]);
        const g = await fsGeometry(img);
        const d = await dumpe2fs(img);
        assert.is(g.blocks, Number(d['Block count']), `${size}: block count`);
        assert.is(g.blockSize, Number(d['Block size']));
        assert.is(g.groupBlocks, Number(d['Blocks per group']));
        assert.is(g.firstBlock, Number(d['First block']));
        assert.not.ok(fsNeedsGrow(g, size), `${size}: a fresh filesystem has nothing to grow on its own device`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the prediction against resize2fs (offline, on image files) at odd sizes: no grow missed, none predicted that does not happen', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tjg-'));
    try {
      for (const extra of [4, 100, 560, 600, 1024, 4096, 8 * 1024 + 4]) {
        const img = path.join(dir, `r${extra}`);
        await writeFile(img, '');
        await truncate(img, 64 * M);
        await sh('mkfs.ext4', ['-q', '-F', img]);
        const before = await fsGeometry(img);
        const size = 64 * M + extra * 1024;
        await truncate(img, size);
        await sh('e2fsck', ['-fy', img]).catch(() => '');
        await sh('resize2fs', [img]);
        const after = await fsGeometry(img);
        assert.is(fsNeedsGrow(before, size), after.blocks > before.blocks, `+${extra} KiB: predicted ${fsGrowTarget(before, size)}, resize2fs reached ${after.blocks}`);
        assert.not.ok(fsNeedsGrow(after, size), `+${extra} KiB: nothing left to grow after resize2fs (${after.blocks}, predicted ${fsGrowTarget(after, size)})`);
        await rm(img);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
} else {
  test.skip('real ext4 images (no mkfs.ext4/resize2fs/e2fsck/dumpe2fs here)', () => {});
}

if (await have('mkfs.xfs')) {
  test('a real mkfs.xfs image: the geometry read fills the file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tjg-'));
    try {
      const img = path.join(dir, 'x');
      await writeFile(img, '');
      await truncate(img, 320 * M);
      await sh('mkfs.xfs', ['-q', '-f', img]);
      const g = await fsGeometry(img);
      assert.is(g.type, 'xfs');
      assert.is(g.blocks * g.blockSize, 320 * M);
      assert.ok(g.groupBlocks > 0 && g.groupBlocks <= g.blocks);
      assert.not.ok(fsNeedsGrow(g, 320 * M));
      assert.ok(fsNeedsGrow(g, 640 * M));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
} else {
  test.skip('a real mkfs.xfs image (no mkfs.xfs here)', () => {});
}

test.run();
