// Status/table parsers on lines recorded from the dmvm guest's kernel (6.1, thin-pool 1.22) and on
// malformed lines; table builders against the kernel's limits.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  formatThinPoolStatus, formatThinStatus, parseTableLine, parseThinPoolStatus, parseThinPoolTable, parseThinStatus,
  parseThinTable, thinPoolTable, thinTable, parseThinDump, parseMountInfo, fsTypeFromSuperblock, checkDmName,
} from '../src/index.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

// Recorded with `dmsetup status` / DM_TABLE_STATUS in the guest.
const RECORDED_POOL = [
  ['0 1649/16384 0/16384 - rw discard_passdown queue_if_no_space - 1024 ', { transactionId: 0, usedMetadataBlocks: 1649, totalMetadataBlocks: 16384, usedDataBlocks: 0, totalDataBlocks: 16384 }],
  ['2 1650/16384 18/16384 - rw discard_passdown queue_if_no_space - 1024 ', { transactionId: 2, usedMetadataBlocks: 1650, usedDataBlocks: 18 }],
  ['0 419/4096 0/4096 - rw discard_passdown queue_if_no_space - 1024 ', { totalMetadataBlocks: 4096, metadataLowWaterMark: 1024 }],
] as const;

test('thin-pool status: recorded kernel lines', () => {
  for (const [line, expect] of RECORDED_POOL) {
    const s = parseThinPoolStatus(line);
    assert.is(s.failed, false);
    if (s.failed) continue;
    for (const [k, v] of Object.entries(expect)) assert.is((s as unknown as Record<string, unknown>)[k], v, `${k} of ${line}`);
    assert.is(s.heldMetadataRoot, null);
    assert.is(s.mode, 'rw');
    assert.is(s.discard, 'discard_passdown');
    assert.is(s.noSpace, 'queue');
    assert.is(s.needsCheck, false);
    assert.is(formatThinPoolStatus(s), line, 'the model formats exactly what the kernel prints');
  }
});

test('thin-pool status: every field variant', () => {
  const s = parseThinPoolStatus('18446744 10/100 5/50 4321 out_of_data_space ignore_discard error_if_no_space needs_check 25');
  assert.equal(s, {
    failed: false, transactionId: 18446744, usedMetadataBlocks: 10, totalMetadataBlocks: 100, usedDataBlocks: 5, totalDataBlocks: 50,
    heldMetadataRoot: 4321, mode: 'out_of_data_space', discard: 'ignore_discard', noSpace: 'error', needsCheck: true, metadataLowWaterMark: 25,
  });
  const old = parseThinPoolStatus('3 1/2 0/4 - ro no_discard_passdown queue_if_no_space -');
  assert.ok(!old.failed && old.metadataLowWaterMark === null && old.mode === 'ro' && old.discard === 'no_discard_passdown');
  assert.equal(parseThinPoolStatus('Fail'), { failed: true, reason: 'Fail' });
  assert.equal(parseThinPoolStatus('Error '), { failed: true, reason: 'Error' });
});

test('thin-pool status: malformed lines are ERR_DM_STATUS', () => {
  for (const line of [
    '', ' ', 'abc', '0 1/2 0/4 - rw discard_passdown queue_if_no_space', '0 1/2 0/4 - rw discard_passdown queue_if_no_space - 1 extra',
    'x 1/2 0/4 - rw discard_passdown queue_if_no_space - 1', '0 3/2 0/4 - rw discard_passdown queue_if_no_space - 1',
    '0 1-2 0/4 - rw discard_passdown queue_if_no_space - 1', '0 1/2 0/4 - rx discard_passdown queue_if_no_space - 1',
    '0 1/2 0/4 - rw discard queue_if_no_space - 1', '0 1/2 0/4 - rw discard_passdown queue - 1', '0 1/2 0/4 - rw discard_passdown queue_if_no_space maybe 1',
    '-1 1/2 0/4 - rw discard_passdown queue_if_no_space - 1', '99999999999999999999 1/2 0/4 - rw discard_passdown queue_if_no_space - 1',
    '0 1/2 0/4 x rw discard_passdown queue_if_no_space - 1', 'Fail Fail',
  ]) {
    assert.is(code(() => parseThinPoolStatus(line)), 'ERR_DM_STATUS', JSON.stringify(line));
  }
});

test('thin status: recorded, variants, malformed', () => {
  assert.equal(parseThinStatus('2304 2097151'), { state: 'active', mappedSectors: 2304, highestMappedSector: 2097151 });
  assert.equal(parseThinStatus('0 -'), { state: 'active', mappedSectors: 0, highestMappedSector: null });
  assert.equal(parseThinStatus('Fail'), { state: 'failed' });
  assert.equal(parseThinStatus('-'), { state: 'uninitialised' });
  assert.is(formatThinStatus(parseThinStatus('2304 2097151')), '2304 2097151');
  for (const line of ['', '1', '1 2 3', 'a -', '1 b', '- -']) assert.is(code(() => parseThinStatus(line)), 'ERR_DM_STATUS', line);
});

test('tables: recorded kernel table lines parse', () => {
  assert.equal(parseThinPoolTable('7:1 7:0 128 32768 0 '), {
    metadataDevice: '7:1', dataDevice: '7:0', dataBlockSectors: 128, lowWaterMarkBlocks: 32768,
    features: { skipBlockZeroing: false, ignoreDiscard: false, noDiscardPassdown: false, readOnly: false, errorIfNoSpace: false },
  });
  assert.is(parseThinPoolTable('7:0 7:1 128 10 2 skip_block_zeroing error_if_no_space ').features.errorIfNoSpace, true);
  assert.equal(parseThinTable('254:0 0'), { poolDevice: '254:0', id: 0, externalOrigin: null });
  assert.equal(parseThinTable('254:0 7 8:16'), { poolDevice: '254:0', id: 7, externalOrigin: '8:16' });
  assert.equal(parseTableLine('0 2097152 thin-pool 7:1 7:0 128 32768 0 '), { start: 0, length: 2097152, type: 'thin-pool', params: '7:1 7:0 128 32768 0 ' });
  for (const p of ['', '7:0 7:1 128', '7:0 7:1 128 10 2 skip_block_zeroing', '7:0 7:1 128 10 1 bogus', '7:0 7:1 x 10']) {
    assert.is(code(() => parseThinPoolTable(p)), 'ERR_DM_STATUS', p);
  }
  for (const p of ['', '254:0', '254:0 x', '254:0 1 2 3']) assert.is(code(() => parseThinTable(p)), 'ERR_DM_STATUS', p);
  assert.is(code(() => parseTableLine('thin 0 1')), 'ERR_DM_STATUS');
});

test('builders: valid tables, and refusals before the kernel', () => {
  const spec = { metadataDevice: '/dev/loop0', dataDevice: '/dev/loop1', lengthSectors: 2097152, dataBlockSectors: 128, lowWaterMarkBlocks: 1024 };
  assert.equal(thinPoolTable(spec), { start: 0, length: 2097152, type: 'thin-pool', params: '/dev/loop0 /dev/loop1 128 1024' });
  assert.is(thinPoolTable({ ...spec, features: { readOnly: true, skipBlockZeroing: true } }).params, '/dev/loop0 /dev/loop1 128 1024 2 skip_block_zeroing read_only');
  const round = parseThinPoolTable(thinPoolTable({ ...spec, features: { ignoreDiscard: true } }).params);
  assert.is(round.features.ignoreDiscard, true);
  assert.equal(thinTable({ poolDevice: '/dev/mapper/pool', id: 16777215, lengthSectors: 8 }), { start: 0, length: 8, type: 'thin', params: '/dev/mapper/pool 16777215' });
  for (const bad of [
    { ...spec, dataBlockSectors: 64 }, { ...spec, dataBlockSectors: 200 }, { ...spec, dataBlockSectors: 4194304 },
    { ...spec, lowWaterMarkBlocks: 16384 }, { ...spec, lowWaterMarkBlocks: -1 }, { ...spec, lengthSectors: 100 },
    { ...spec, dataDevice: '/dev/loop0' }, { ...spec, metadataDevice: 'a b' }, { ...spec, metadataDevice: '' }, { ...spec, lengthSectors: 1.5 },
  ]) {
    assert.is(code(() => thinPoolTable(bad)), 'ERR_DM_TABLE', JSON.stringify(bad));
  }
  for (const id of [-1, 1 << 24, 0.5, NaN]) assert.is(code(() => thinTable({ poolDevice: '/dev/mapper/p', id, lengthSectors: 8 })), 'ERR_DM_TABLE');
  assert.is(code(() => thinTable({ poolDevice: '/dev/mapper/p', id: 1, lengthSectors: 0 })), 'ERR_DM_TABLE');
});

test('names: DM limits', () => {
  assert.is(checkDmName('x'.repeat(127)), 'x'.repeat(127));
  for (const n of ['', 'x'.repeat(128), 'a/b', '.', '..', 'a\nb', 'ü'.repeat(64)]) assert.is(code(() => checkDmName(n)), 'ERR_DM_NAME', n);
});

test('thin_dump output, mountinfo, superblock magic', () => {
  const xml = '<superblock uuid="" time="1" transaction="3" flags="0" version="2" data_block_size="128" nr_data_blocks="16384">\n  <device dev_id="7" mapped_blocks="0" transaction="0" creation_time="0" snap_time="1">\n  </device>\n  <device dev_id="0" mapped_blocks="18" transaction="0" creation_time="0" snap_time="1">\n  </device>\n</superblock>\n';
  assert.equal(parseThinDump(xml), { transactionId: 3, ids: [0, 7], dataBlockSectors: 128, dataBlocks: 16384 });
  assert.is(code(() => parseThinDump('garbage')), 'ERR_DM_STATUS');
  const mi = parseMountInfo('36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext4 /dev/mapper/thin0 rw,errors=continue\n');
  assert.equal(mi, [{ mountPoint: '/mnt/with space', dev: '98:0', options: ['rw', 'noatime'], fsType: 'ext4', source: '/dev/mapper/thin0' }]);
  const ext = Buffer.alloc(4096);
  ext.writeUInt16LE(0xef53, 1024 + 56);
  assert.is(fsTypeFromSuperblock(ext), 'ext4');
  assert.is(fsTypeFromSuperblock(Buffer.from('XFSB' + '\0'.repeat(100), 'latin1')), 'xfs');
  assert.is(fsTypeFromSuperblock(Buffer.alloc(4096)), null);
});

test.run();
