export * from './errors.js';
export * from './names.js';
export * from './tables.js';
export * from './status.js';
export * from './fs.js';
export * from './backend.js';
export * from './plan.js';
export { KernelBackend, loadNative, parseThinDump, type KernelBackendOptions } from './kernel.js';
export { ModelBackend } from './model.js';
export {
  probeDeviceMapper, requireKernelBackend, decideDeviceMapper, gatherDmFacts, miscMinor, DM_CONTROL_PATH, PROC_MISC_PATH,
  type DeviceMapperProbe, type DmFacts, type DmVersion, type NativeProbeFact, type ProbeOptions,
} from './probe.js';
export { readThinMetadataFile } from './thin-metadata.js';
