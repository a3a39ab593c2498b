export * from './journal.js';
export { checkStore, crc32c, type StoreReport, type StoreProblem, type StoreProblemReason, type TornWrite } from './leveldb-files.js';
