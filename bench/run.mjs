#!/usr/bin/env node
// `pnpm bench <name…>`: runs bench/<name>.mjs (each exports a default async function; every .mjs here but this one
// is a benchmark: journal, model, recovery, scale, kernel, snapshotter). With no name, lists them.
// Benchmarks print ratios against a baseline measured in the same run; they are not tests and never fail CI.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here).filter((f) => f.endsWith('.mjs') && f !== 'run.mjs').map((f) => f.slice(0, -4));
const names = process.argv.slice(2);
if (names.length === 0) {
  console.log(`usage: pnpm bench <${available.join('|')}>`);
  process.exit(2);
}
for (const name of names) {
  if (!available.includes(name)) {
    console.error(`unknown benchmark "${name}"; have: ${available.join(', ')}`);
    process.exit(2);
  }
  const mod = await import(pathToFileURL(path.join(here, `${name}.mjs`)).href);
  await mod.default(process.argv.slice(3));
}
