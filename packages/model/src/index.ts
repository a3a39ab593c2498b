export * from './validate.js';
export * from './options.js';
export * from './state.js';
export * from './decide.js';
export * from './queries.js';
export * from './snapshots.js';
