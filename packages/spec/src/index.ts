export * from './errors.js';
export * from './events.js';
export * from './codec.js';
export * from './chain.js';
