/**
 * @thinjournal/driver — the library users import: Docker's devmapper graph driver API (seed parity: see the
 * table in packages/driver/README.md) on thinjournal's journal, model, reconciler and dm backends.
 */
import { probeFsType as probe, mounted as mountEntry, type FsType } from '@thinjournal/dm';

export { init, Driver, statusPairs, type IdMap, type IdMaps } from './driver.js';
export { DeviceSet, type DeviceSetOptions, type DiskUsage, type Status, type DevStatus } from './device-set.js';
export { ThinpoolInitError } from './errors.js';
// What an embedder needs besides the driver: the coded errors and the backends (kernel, or the model for tests).
export { ThinjournalError, ERROR_CODES, isCode, type ErrorCode } from '@thinjournal/spec';
export { KernelBackend, ModelBackend, type Backend, type BackendCapabilities } from '@thinjournal/dm';
export { layoutOf, devicePrefixFor, type Layout } from './layout.js';
export { preparePoolDevices, type PoolDevices, type PoolDevicesOptions } from './pool-devices.js';

/** Docker's ProbeFsType(device): "ext4" or "xfs" from the superblock (ERR_FS_UNKNOWN otherwise). */
export function probeFsType(device: string): Promise<FsType> {
  return probe(device);
}

/** Docker's Mounted(mountpoint): whether something is mounted exactly there. */
export async function mounted(mountpoint: string): Promise<boolean> {
  return (await mountEntry(mountpoint)) !== null;
}
