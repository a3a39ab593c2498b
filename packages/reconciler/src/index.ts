export * from './plan.js';
export * from './engine.js';
export * from './replay.js';
export * from './transaction.js';
/** The pool's table geometry is dm's (tables.ts); re-exported for embedders that build a pool's table themselves. */
export { poolTableSpec } from '@thinjournal/dm';
