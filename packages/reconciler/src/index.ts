export * from './plan.js';
export * from './engine.js';
export * from './replay.js';
