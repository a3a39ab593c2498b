/**
 * dm-thin's on-disk metadata, read from a regular file: the superblock and the device-details btree, enough
 * for what recovery compares (transaction id, thin ids, data block size, data blocks). thin_dump reads block
 * devices; on a regular file it opens with O_DIRECT, which some filesystems (tmpfs) refuse — and a loopback
 * pool's metadata file, its loop not attached yet (a dry run after a reboot), is exactly such a file.
 *
 * Layout (the kernel's dm-thin-metadata.c and persistent-data btree, little-endian, 4 KiB blocks):
 *   superblock at block 0: magic (u64 at 32) = 27022010, trans_id (u64 at 48), the data space map root at 64
 *   (its first u64: nr_blocks), device_details_root (u64 at 328), data_block_size in sectors (u32 at 336);
 *   btree node: flags (u32 at 4: 1 internal, 2 leaf), blocknr (u64 at 8), nr_entries (u32 at 16),
 *   max_entries (u32 at 20), value_size (u32 at 24); keys u64 × max_entries from 32, then values; an internal
 *   node's values are u64 child block numbers, a leaf's keys (here) thin device ids.
 * Checks: the magic, each block's own blocknr field, node flags and sizes, a node visited once; checksums are
 * not recomputed (what thin_check is for). Damage is ERR_DM_STATUS naming the file and the block.
 */
import { open } from 'node:fs/promises';
import { ThinjournalError } from '@thinjournal/spec';
import type { PoolMetadata } from './backend.js';
import { METADATA_BLOCK_BYTES as BLOCK } from './tables.js';

const MAGIC = 27022010n;
const INTERNAL = 1;
const LEAF = 2;
/** More nodes than a metadata device of 16 GiB (the kernel's maximum) can hold: a cycle or garbage. */
const MAX_NODES = (16 * 2 ** 30) / BLOCK;

function damaged(file: string, block: number, why: string): ThinjournalError {
  return new ThinjournalError('ERR_DM_STATUS', `${file}: thin metadata block ${block}: ${why}`, { path: file, block });
}

function u64(b: Buffer, at: number, file: string, block: number): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw damaged(file, block, `value ${v} at offset ${at} is out of range`);
  return Number(v);
}

export async function readThinMetadataFile(file: string): Promise<PoolMetadata> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const blocks = Math.floor(size / BLOCK);
    const read = async (n: number): Promise<Buffer> => {
      if (n >= blocks) throw damaged(file, n, `beyond the end of the file (${blocks} blocks)`);
      const b = Buffer.alloc(BLOCK);
      const { bytesRead } = await fh.read(b, 0, BLOCK, n * BLOCK);
      if (bytesRead !== BLOCK) throw damaged(file, n, 'short read');
      if (u64(b, 8, file, n) !== n) throw damaged(file, n, `its blocknr field says ${b.readBigUInt64LE(8)}`);
      return b;
    };
    if (blocks === 0) throw damaged(file, 0, 'no superblock (the file is shorter than one block)');
    const sb = await read(0).catch((err) => {
      throw err instanceof ThinjournalError ? damaged(file, 0, `not a thin-pool superblock (${err.message})`) : err;
    });
    if (sb.readBigUInt64LE(32) !== MAGIC) throw damaged(file, 0, 'not a thin-pool superblock (bad magic)');
    const transactionId = u64(sb, 48, file, 0);
    const dataBlocks = u64(sb, 64, file, 0);
    const detailsRoot = u64(sb, 328, file, 0);
    const dataBlockSectors = sb.readUInt32LE(336);
    const ids: number[] = [];
    const seen = new Set<number>();
    const stack = [detailsRoot];
    while (stack.length) {
      const n = stack.pop()!;
      if (seen.has(n)) throw damaged(file, n, 'reached twice in the device-details btree');
      if (seen.size >= MAX_NODES) throw damaged(file, n, 'the device-details btree has too many nodes');
      seen.add(n);
      const node = await read(n);
      const flags = node.readUInt32LE(4);
      const entries = node.readUInt32LE(16);
      const max = node.readUInt32LE(20);
      const valueSize = node.readUInt32LE(24);
      if (flags !== INTERNAL && flags !== LEAF) throw damaged(file, n, `node flags ${flags}`);
      if (entries > max || 32 + max * (8 + valueSize) > BLOCK) throw damaged(file, n, `node of ${entries}/${max} entries of ${valueSize} bytes`);
      for (let i = 0; i < entries; i++) {
        if (flags === LEAF) ids.push(u64(node, 32 + 8 * i, file, n));
        else stack.push(u64(node, 32 + 8 * max + 8 * i, file, n));
      }
    }
    return { transactionId, ids: ids.sort((a, b) => a - b), dataBlockSectors, dataBlocks };
  } finally {
    await fh.close();
  }
}
