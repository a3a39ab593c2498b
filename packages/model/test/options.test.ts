// Every dm.* option: its default, its valid forms, each invalid form with its message.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseOptions, parseSize, effectiveOptions, recordedTexts, OPTION_NAMES, DEFAULTS, GIB, MIB, KIB, type DmOptions } from '../src/index.js';

/** Asserts ERR_BAD_OPTION whose message names the option and quotes the text. */
function refuses(opts: string[], option: string, text: string, fragment: string, env = {}): void {
  try {
    parseOptions(opts, env);
  } catch (e) {
    const err = e as { code?: string; message: string; option?: string; text?: string };
    assert.is(err.code, 'ERR_BAD_OPTION', `${opts.join(' ')}: ${err.message}`);
    assert.ok(err.message.includes(option), `message names ${option}: ${err.message}`);
    assert.ok(err.message.includes(JSON.stringify(text)), `message quotes ${JSON.stringify(text)}: ${err.message}`);
    assert.ok(err.message.includes(fragment), `message says "${fragment}": ${err.message}`);
    assert.is(err.option, option);
    return;
  }
  assert.unreachable(`${opts.join(' ')} was accepted`);
}

const one = (o: string, env = {}): DmOptions => parseOptions([o], env);

test('defaults are Docker\'s', () => {
  const o = parseOptions([]);
  assert.is(o.thinPoolDevice, null);
  assert.is(o.baseSize, 10 * GIB);
  assert.is(o.baseSizeGiven, false);
  assert.is(o.loopDataSize, 100 * GIB);
  assert.is(o.loopMetadataSize, 2 * GIB);
  assert.is(o.fs, 'xfs');
  assert.equal(o.mkfsArgs, []);
  assert.is(o.mountOptions, '');
  assert.is(o.dataDevice, null);
  assert.is(o.metadataDevice, null);
  assert.is(o.blockSize, 64 * KIB);
  assert.is(o.blkDiscard, true);
  assert.is(o.overrideUdevSyncCheck, false);
  assert.is(o.useDeferredRemoval, false);
  assert.is(o.useDeferredDeletion, false);
  assert.is(o.minFreeSpacePercent, 10);
  assert.is(o.xfsNospaceMaxRetries, null);
  assert.is(o.libdmLogLevel, 2);
  assert.is(o.directLvm, null);
  assert.is(o.loopback, true);
  assert.equal(o.given, {});
});

test('env: ext4 when xfs is unavailable; deferred modes on by default when the kernel supports them', () => {
  assert.is(parseOptions([], { xfsSupported: false }).fs, 'ext4');
  const d = parseOptions([], { deferredRemovalSupported: true });
  assert.is(d.useDeferredRemoval, true);
  assert.is(d.useDeferredDeletion, true);
  const off = parseOptions(['dm.use_deferred_deletion=false'], { deferredRemovalSupported: true });
  assert.is(off.useDeferredRemoval, true);
  assert.is(off.useDeferredDeletion, false);
  refuses(['dm.fs=xfs'], 'dm.fs', 'xfs', 'not supported', { xfsSupported: false });
  refuses(['dm.use_deferred_removal=true'], 'dm.use_deferred_removal', 'true', 'does not support', { deferredRemovalSupported: false });
});

test('size forms (Docker RAMInBytes): units, case, i, b, decimals, space', () => {
  const cases: [string, number][] = [
    ['10G', 10 * GIB], ['10g', 10 * GIB], ['10GB', 10 * GIB], ['10GiB', 10 * GIB], ['10gib', 10 * GIB], ['10 G', 10 * GIB],
    ['512MiB', 512 * MIB], ['512M', 512 * MIB], ['64K', 64 * KIB], ['64k', 64 * KIB], ['1T', 1024 * GIB], ['1P', 1024 * 1024 * GIB],
    ['1.5G', 1.5 * GIB], ['0.5K', 512], ['1048576', MIB], ['2048b', 2048], ['2048B', 2048],
  ];
  for (const [t, v] of cases) assert.is(parseSize('dm.basesize', t), v, t);
});

test('dm.basesize', () => {
  const o = one('dm.basesize=20G');
  assert.is(o.baseSize, 20 * GIB);
  assert.is(o.baseSizeGiven, true);
  assert.is(one('dm.basesize=512MiB').baseSize, 512 * MIB);
  assert.is(one(' DM.BaseSize = 20G ').baseSize, 20 * GIB, 'key case-insensitive, spaces trimmed (as Docker)');
  refuses(['dm.basesize=ten'], 'dm.basesize', 'ten', 'not a size');
  refuses(['dm.basesize=-1G'], 'dm.basesize', '-1G', 'not a size');
  refuses(['dm.basesize=0'], 'dm.basesize', '0', 'greater than 0');
  refuses(['dm.basesize=1000'], 'dm.basesize', '1000', 'multiple of 512');
  refuses(['dm.basesize=0.3'], 'dm.basesize', '0.3', 'whole number of bytes');
  refuses(['dm.basesize=10X'], 'dm.basesize', '10X', 'not a size');
  refuses(['dm.basesize=0x10'], 'dm.basesize', '0x10', 'not a size');
  refuses(['dm.basesize=1e9'], 'dm.basesize', '1e9', 'not a size');
  refuses(['dm.basesize=10i'], 'dm.basesize', '10i', 'not a size');
  refuses(['dm.basesize=99999999999P'], 'dm.basesize', '99999999999P', 'too large');
  refuses(['dm.basesize='], 'dm.basesize', '', 'empty value');
  refuses(['dm.basesize=10G', 'dm.basesize=20G'], 'dm.basesize', '20G', 'given twice');
});

test('dm.loopdatasize / dm.loopmetadatasize', () => {
  assert.is(one('dm.loopdatasize=200G').loopDataSize, 200 * GIB);
  assert.is(one('dm.loopmetadatasize=4G').loopMetadataSize, 4 * GIB);
  refuses(['dm.loopdatasize=big'], 'dm.loopdatasize', 'big', 'not a size');
  refuses(['dm.loopmetadatasize=0'], 'dm.loopmetadatasize', '0', 'greater than 0');
  refuses(['dm.loopdatasize=100G', 'dm.thinpooldev=pool'], 'dm.loopdatasize', '100G', 'loopback sizes only apply');
  refuses(['dm.loopmetadatasize=2G', 'dm.datadev=/dev/sdb', 'dm.metadatadev=/dev/sdc'], 'dm.loopmetadatasize', '2G', 'loopback sizes only apply');
  refuses(['dm.loopdatasize=100G', 'dm.directlvm_device=/dev/sdb'], 'dm.loopdatasize', '100G', 'loopback sizes only apply');
});

test('dm.fs', () => {
  assert.is(one('dm.fs=ext4').fs, 'ext4');
  assert.is(one('dm.fs=xfs').fs, 'xfs');
  refuses(['dm.fs=btrfs'], 'dm.fs', 'btrfs', 'unsupported filesystem');
  refuses(['dm.fs=EXT4'], 'dm.fs', 'EXT4', 'unsupported filesystem');
});

test('dm.mkfsarg repeats and accumulates; dm.mountopt repeats and joins with commas', () => {
  const o = parseOptions(['dm.mkfsarg=-K', 'dm.mkfsarg=-m crc=1', 'dm.mountopt=nodiscard', 'dm.mountopt=noatime,nobarrier']);
  assert.equal(o.mkfsArgs, ['-K', '-m crc=1']);
  assert.is(o.mountOptions, 'nodiscard,noatime,nobarrier');
  assert.is(o.given['dm.mkfsarg'], JSON.stringify(['-K', '-m crc=1']));
  refuses(['dm.mountopt=a b'], 'dm.mountopt', 'a b', 'comma-separated');
  refuses(['dm.mountopt=a,,b'], 'dm.mountopt', 'a,,b', 'comma-separated');
  refuses(['dm.mkfsarg=-K\u0007'], 'dm.mkfsarg', '-K\u0007', 'control character');
});

test('dm.thinpooldev: name or /dev/mapper/name; excludes datadev, direct-lvm, loop sizes, blocksize', () => {
  const o = one('dm.thinpooldev=/dev/mapper/docker-thinpool');
  assert.is(o.thinPoolDevice, 'docker-thinpool');
  assert.is(o.loopback, false);
  assert.is(o.blkDiscard, false, 'no discard on raw devices unless asked');
  assert.is(one('dm.thinpooldev=mypool').thinPoolDevice, 'mypool');
  refuses(['dm.thinpooldev=/dev/sdb'], 'dm.thinpooldev', '/dev/sdb', 'not a device-mapper device name');
  refuses(['dm.thinpooldev=/dev/mapper/'], 'dm.thinpooldev', '/dev/mapper/', 'not a device-mapper device name');
  refuses(['dm.thinpooldev=' + 'p'.repeat(128)], 'dm.thinpooldev', 'p'.repeat(128), 'at most 127 bytes');
  refuses(['dm.thinpooldev=p', 'dm.datadev=/dev/sdb', 'dm.metadatadev=/dev/sdc'], 'dm.thinpooldev', 'p', 'brings its own');
  refuses(['dm.thinpooldev=p', 'dm.directlvm_device=/dev/sdb'], 'dm.thinpooldev', 'p', 'direct-lvm sets up its own pool');
  refuses(['dm.thinpooldev=p', 'dm.blocksize=128K'], 'dm.blocksize', '128K', 'already has its block size');
});

test('dm.datadev / dm.metadatadev: absolute paths, both or neither, distinct', () => {
  const o = parseOptions(['dm.datadev=/dev/sdb', 'dm.metadatadev=/dev/sdc']);
  assert.is(o.dataDevice, '/dev/sdb');
  assert.is(o.metadataDevice, '/dev/sdc');
  assert.is(o.loopback, false);
  assert.is(o.blkDiscard, false);
  refuses(['dm.datadev=/dev/sdb'], 'dm.datadev', '/dev/sdb', 'needs dm.metadatadev');
  refuses(['dm.metadatadev=/dev/sdc'], 'dm.metadatadev', '/dev/sdc', 'needs dm.datadev');
  refuses(['dm.datadev=sdb', 'dm.metadatadev=/dev/sdc'], 'dm.datadev', 'sdb', 'not an absolute path');
  refuses(['dm.datadev=/dev/sdb', 'dm.metadatadev=/dev/sdb'], 'dm.datadev', '/dev/sdb', 'different devices');
  refuses(['dm.datadev=/dev/sdb', 'dm.metadatadev=/dev/sdc', 'dm.directlvm_device=/dev/sdd'], 'dm.datadev', '/dev/sdb', 'direct-lvm');
});

test('dm.blocksize: a multiple of 64K in 64K…1G', () => {
  assert.is(one('dm.blocksize=64K').blockSize, 64 * KIB);
  assert.is(one('dm.blocksize=512K').blockSize, 512 * KIB);
  assert.is(one('dm.blocksize=1G').blockSize, GIB);
  assert.is(one('dm.blocksize=192k').blockSize, 192 * KIB);
  for (const t of ['32K', '100K', '2G', '65537']) refuses([`dm.blocksize=${t}`], 'dm.blocksize', t, 'multiple of 64K between 64K and 1G');
  refuses(['dm.blocksize=large'], 'dm.blocksize', 'large', 'not a size');
});

test('booleans: Go ParseBool forms', () => {
  for (const t of ['1', 't', 'T', 'TRUE', 'true', 'True']) assert.is(one(`dm.blkdiscard=${t}`).blkDiscard, true, t);
  for (const t of ['0', 'f', 'F', 'FALSE', 'false', 'False']) assert.is(one(`dm.blkdiscard=${t}`).blkDiscard, false, t);
  for (const t of ['yes', 'no', 'on', 'tRUE', '2']) refuses([`dm.blkdiscard=${t}`], 'dm.blkdiscard', t, 'not a boolean');
  assert.is(parseOptions(['dm.thinpooldev=p', 'dm.blkdiscard=true']).blkDiscard, true, 'explicit blkdiscard wins on raw devices');
  assert.is(one('dm.override_udev_sync_check=true').overrideUdevSyncCheck, true);
  refuses(['dm.override_udev_sync_check=maybe'], 'dm.override_udev_sync_check', 'maybe', 'not a boolean');
});

test('dm.use_deferred_removal / dm.use_deferred_deletion', () => {
  const o = parseOptions(['dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true']);
  assert.is(o.useDeferredRemoval, true);
  assert.is(o.useDeferredDeletion, true);
  refuses(['dm.use_deferred_deletion=true'], 'dm.use_deferred_deletion', 'true', 'needs deferred removal');
  refuses(['dm.use_deferred_deletion=true', 'dm.use_deferred_removal=false'], 'dm.use_deferred_deletion', 'true', 'needs deferred removal');
  refuses(['dm.use_deferred_removal=perhaps'], 'dm.use_deferred_removal', 'perhaps', 'not a boolean');
});

test('dm.min_free_space: N% with 0 ≤ N < 100', () => {
  assert.is(one('dm.min_free_space=0%').minFreeSpacePercent, 0);
  assert.is(one('dm.min_free_space=25%').minFreeSpacePercent, 25);
  assert.is(one('dm.min_free_space=99%').minFreeSpacePercent, 99);
  refuses(['dm.min_free_space=10'], 'dm.min_free_space', '10', '% suffix');
  refuses(['dm.min_free_space=100%'], 'dm.min_free_space', '100%', 'less than 100%');
  refuses(['dm.min_free_space=-5%'], 'dm.min_free_space', '-5%', 'non-negative integer');
  refuses(['dm.min_free_space=5.5%'], 'dm.min_free_space', '5.5%', 'non-negative integer');
});

test('dm.xfs_nospace_max_retries: unsigned integer; xfs only', () => {
  assert.is(one('dm.xfs_nospace_max_retries=0').xfsNospaceMaxRetries, 0);
  assert.is(one('dm.xfs_nospace_max_retries=10').xfsNospaceMaxRetries, 10);
  refuses(['dm.xfs_nospace_max_retries=-1'], 'dm.xfs_nospace_max_retries', '-1', 'non-negative integer');
  refuses(['dm.xfs_nospace_max_retries=many'], 'dm.xfs_nospace_max_retries', 'many', 'non-negative integer');
  refuses(['dm.fs=ext4', 'dm.xfs_nospace_max_retries=3'], 'dm.xfs_nospace_max_retries', '3', 'xfs only');
});

test('dm.libdm_log_level: integer in [2,7]', () => {
  for (let l = 2; l <= 7; l++) assert.is(one(`dm.libdm_log_level=${l}`).libdmLogLevel, l);
  refuses(['dm.libdm_log_level=1'], 'dm.libdm_log_level', '1', 'range [2,7]');
  refuses(['dm.libdm_log_level=8'], 'dm.libdm_log_level', '8', 'range [2,7]');
  refuses(['dm.libdm_log_level=debug'], 'dm.libdm_log_level', 'debug', 'not an integer');
});

test('direct-lvm: device, force, percentages with their defaults and rules', () => {
  const o = one('dm.directlvm_device=/dev/xvdf');
  assert.equal(o.directLvm, { device: '/dev/xvdf', force: false, thinpPercent: 95, thinpMetaPercent: 1, autoextendThreshold: 80, autoextendPercent: 20 });
  assert.is(o.thinPoolDevice, DEFAULTS.directLvmPoolName);
  assert.is(o.loopback, false);
  const p = parseOptions(['dm.directlvm_device=/dev/xvdf', 'dm.directlvm_device_force=true', 'dm.thinp_percent=90%', 'dm.thinp_metapercent=2',
    'dm.thinp_autoextend_threshold=70', 'dm.thinp_autoextend_percent=100%']);
  assert.equal(p.directLvm, { device: '/dev/xvdf', force: true, thinpPercent: 90, thinpMetaPercent: 2, autoextendThreshold: 70, autoextendPercent: 100 });
  refuses(['dm.directlvm_device=xvdf'], 'dm.directlvm_device', 'xvdf', 'not an absolute path');
  refuses(['dm.directlvm_device_force=true'], 'dm.directlvm_device_force', 'true', 'needs dm.directlvm_device');
  refuses(['dm.directlvm_device=/dev/x', 'dm.directlvm_device_force=sure'], 'dm.directlvm_device_force', 'sure', 'not a boolean');
  for (const n of ['dm.thinp_percent', 'dm.thinp_metapercent', 'dm.thinp_autoextend_threshold', 'dm.thinp_autoextend_percent']) {
    refuses([`${n}=50`], n, '50', 'needs dm.directlvm_device');
    refuses(['dm.directlvm_device=/dev/x', `${n}=lots`], n, 'lots', 'non-negative integer');
    refuses(['dm.directlvm_device=/dev/x', `${n}=0`], n, '0', 'greater than 0');
  }
  refuses(['dm.directlvm_device=/dev/x', 'dm.thinp_percent=100', 'dm.thinp_metapercent=1'], 'dm.thinp_percent', '100', 'less than 100');
  refuses(['dm.directlvm_device=/dev/x', 'dm.thinp_autoextend_threshold=101'], 'dm.thinp_autoextend_threshold', '101', 'at most 100');
  refuses(['dm.directlvm_device=/dev/x', 'dm.thinp_percent=90'], 'dm.thinp_percent', '90', 'must be given together');
  refuses(['dm.directlvm_device=/dev/x', 'dm.thinp_metapercent=5'], 'dm.thinp_metapercent', '5', 'must be given together');
  refuses(['dm.directlvm_device=/dev/x', 'dm.thinp_percent=95', 'dm.thinp_metapercent=10'], 'dm.thinp_percent', '95', 'must not exceed 100');
});

test('malformed entries: unknown option, no "=", empty value', () => {
  refuses(['dm.nosuch=1'], 'dm.nosuch', '1', 'unknown option');
  refuses(['overlay.size=1G'], 'overlay.size', '1G', 'unknown option');
  try { parseOptions(['dm.basesize']); assert.unreachable(); } catch (e) {
    assert.is((e as { code: string }).code, 'ERR_BAD_OPTION');
    assert.match((e as Error).message, /"dm\.basesize" is not of the form key=value/);
  }
  assert.throws(() => parseOptions('dm.fs=xfs' as unknown as string[]), TypeError);
});

test('every option name is known, and effectiveOptions reads back through parseOptions', () => {
  assert.is(OPTION_NAMES.length, 23);
  const o = parseOptions(['dm.basesize=20G', 'dm.fs=ext4', 'dm.min_free_space=5%', 'dm.blocksize=128K', 'dm.use_deferred_removal=true']);
  const eff = effectiveOptions(o);
  const again = parseOptions(Object.entries(eff).filter(([k]) => k !== 'dm.mkfsarg' && k !== 'dm.mountopt').map(([k, v]) => `${k}=${v}`));
  for (const k of ['baseSize', 'fs', 'minFreeSpacePercent', 'blockSize', 'useDeferredRemoval', 'useDeferredDeletion', 'loopDataSize', 'loopMetadataSize', 'blkDiscard', 'libdmLogLevel'] as const) {
    assert.equal(again[k], o[k], k);
  }
});

test('recordedTexts reads back the repeatable options effectiveOptions records; other text is one text', () => {
  const o = parseOptions(['dm.mkfsarg=-O ^has_journal', 'dm.mkfsarg=-E lazy_itable_init=1', 'dm.mountopt=noatime', 'dm.mountopt=discard']);
  const rec = effectiveOptions(o);
  assert.equal(recordedTexts(rec['dm.mkfsarg']!), ['-O ^has_journal', '-E lazy_itable_init=1']);
  assert.equal(recordedTexts(rec['dm.mountopt']!), ['noatime,discard']);
  assert.equal(recordedTexts(effectiveOptions(parseOptions([]))['dm.mkfsarg']!), []);
  assert.equal(recordedTexts('nouuid'), ['nouuid']);
  assert.equal(recordedTexts('[1,2]'), ['[1,2]']);
});

test.run();
