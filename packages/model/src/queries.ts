/** Read-only views of a State for the driver and CLI (the seed's List, HasDevice, GetDeviceStatus, Status). */
import type { Device, State } from './state.js';

/** Device hashes in hash order; deletion-deferred devices only with `includeDeferred`. */
export function listDevices(s: State, { includeDeferred = false } = {}): string[] {
  const out: string[] = [];
  for (const d of s.devices.values()) if (includeDeferred || !d.deletionDeferred) out.push(d.hash);
  return out.sort();
}

/** A committed device that is not awaiting deferred deletion. */
export function hasDevice(s: State, hash: string): boolean {
  const d = s.devices.get(hash);
  return d !== undefined && !d.deletionDeferred;
}

export function getDevice(s: State, hash: string): Device | undefined {
  return s.devices.get(hash);
}

/** The seed's DevStatus fields the journal knows (mapped-sector counts come from the kernel). */
export function deviceStatus(s: State, hash: string): { deviceId: number; size: number; transactionId: number; sizeInSectors: number } | undefined {
  const d = s.devices.get(hash);
  return d && { deviceId: d.deviceId, size: d.size, transactionId: d.txId, sizeInSectors: d.size / 512 };
}

/** The deferred-deletion queue in an order that can succeed: snapshots before their parents, then by hash. */
export function deferredDeletionOrder(s: State): string[] {
  const depth = (h: string): number => {
    let n = 0;
    for (let d = s.devices.get(h); d && d.parentHash !== null; d = s.devices.get(d.parentHash)) n++;
    return n;
  };
  return [...s.deferredDeletions].sort((a, b) => depth(b) - depth(a) || (a < b ? -1 : a > b ? 1 : 0));
}

/** Snapshot lineage: child hashes of `hash`, sorted. O(devices). */
export function childrenOf(s: State, hash: string): string[] {
  const out: string[] = [];
  for (const d of s.devices.values()) if (d.parentHash === hash) out.push(d.hash);
  return out.sort();
}
