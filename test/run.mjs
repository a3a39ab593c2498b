#!/usr/bin/env node
// The test command. Runs every compiled uvu suite, each file in its own child process (isolation and both
// cores), and ends with the plain line `N passed, N failed, N skipped`. Exit status is non-zero when any test
// failed, any file crashed or timed out, or no test ran at all.
//
//   node test/run.mjs [substring…]     only files whose path contains one of the substrings
//
// Files: packages/*/dist/test/**/*.test.js and test/dist/**/*.test.js. Files named *.kernel.test.js need a
// real device-mapper; see test/kernel.mjs for how they are run (directly as root, or in the dmvm guest).
import { spawn } from 'node:child_process';
import { readdirSync, existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runKernelFiles } from './kernel.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MARK = '@@thinjournal-result ';
const FILE_TIMEOUT_MS = Number(process.env.THINJOURNAL_TEST_TIMEOUT_MS || 15 * 60_000);

function walk(dir, out) {
  if (!existsSync(dir)) return out;
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) walk(p, out);
    else if (ent.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

function findFiles() {
  const files = [];
  const pk = path.join(root, 'packages');
  for (const name of readdirSync(pk)) {
    if (statSync(path.join(pk, name)).isDirectory()) walk(path.join(pk, name, 'dist', 'test'), files);
  }
  walk(path.join(root, 'test', 'dist'), files);
  return files.map((f) => path.relative(root, f)).sort();
}

export function parseResults(text) {
  const results = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(MARK)) results.push(JSON.parse(line.slice(MARK.length)));
  }
  return results;
}

/** `timeoutMs`: the whole child's limit (default: FILE_TIMEOUT_MS; a guest running several files gets more). */
function runChild(files, { wrap, timeoutMs = FILE_TIMEOUT_MS, env = {} } = {}) {
  return new Promise((resolve) => {
    const argv = wrap ?? [process.execPath, path.join(root, 'test', 'uvu-child.mjs'), ...files];
    const child = spawn(argv[0], argv.slice(1), {
      cwd: root,
      env: { ...process.env, ...env, FORCE_COLOR: process.stdout.isTTY ? '1' : '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n  ✘ timed out after ${timeoutMs} ms\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const results = parseResults(out);
      const seen = new Set(results.map((r) => r.file));
      for (const f of files) {
        if (!seen.has(f)) results.push({ file: f, passed: 0, failed: 1, skipped: 0, error: `exited ${signal ?? code} before reporting` });
      }
      if (code !== 0 && results.every((r) => r.failed === 0)) {
        results.push({ file: files.join(' '), passed: 0, failed: 1, skipped: 0, error: `exited ${signal ?? code}` });
      }
      resolve({ out: out.split('\n').filter((l) => !l.startsWith(MARK)).join('\n'), results });
    });
  });
}

async function main() {
  const filters = process.argv.slice(2);
  let files = findFiles();
  if (filters.length) files = files.filter((f) => filters.some((s) => f.includes(s)));
  const plain = files.filter((f) => !f.endsWith('.kernel.test.js'));
  const kernel = files.filter((f) => f.endsWith('.kernel.test.js'));

  const all = [];
  let next = 0;
  const width = Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 4));
  async function worker() {
    while (next < plain.length) {
      const f = plain[next++];
      const { out, results } = await runChild([f]);
      process.stdout.write(out.trimEnd() + '\n');
      all.push(...results);
    }
  }
  await Promise.all(Array.from({ length: width }, worker));
  if (kernel.length) all.push(...(await runKernelFiles(kernel, { root, runChild, fileTimeoutMs: FILE_TIMEOUT_MS })));

  const sum = (k) => all.reduce((n, r) => n + r[k], 0);
  const passed = sum('passed'), failed = sum('failed'), skipped = sum('skipped');
  const bad = all.filter((r) => r.failed > 0);
  if (bad.length) {
    process.stdout.write('\nFailing files:\n');
    for (const r of bad) process.stdout.write(`  ${r.file}: ${r.failed} failed${r.error ? ` (${r.error.split('\n')[0]})` : ''}\n`);
  }
  if (passed + failed === 0) process.stdout.write('\nno test ran\n');
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exitCode = failed > 0 || passed + failed === 0 ? 1 : 0;
}

await main();
