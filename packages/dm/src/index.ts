export * from './errors.js';
export * from './names.js';
export * from './tables.js';
export * from './status.js';
export * from './fs.js';
export * from './backend.js';
export * from './plan.js';
export { KernelBackend, loadNative, parseThinDump, type KernelBackendOptions } from './kernel.js';
export { ModelBackend } from './model.js';
