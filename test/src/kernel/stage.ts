/**
 * Mirrors the modules a child node process needs into a fresh directory (a tmpfs inside the dmvm guest), so
 * that children spawned many times load them from memory instead of over the guest's 9p root.
 *
 * Why: the guest mounts the project over virtio-9p with cache=none, where every stat and read is a round trip
 * to the host; importing the reconciler (≈ 330 files: rxjs's CommonJS build alone is 223) takes ≈ 17 s there,
 * and ≈ 3 s from tmpfs. The kill test starts one child per kill, so it stages once and spawns from the mirror.
 *
 * discoverModules runs the program once (from the original tree) with loader hooks that log every file it
 * loads: ESM and CommonJS-from-ESM through a module `load` hook, CommonJS requires (JSON, .node addons
 * included) through Module._resolveFilename. stageModules copies those files with the same absolute layout
 * under `root`, plus each package.json on the way up from a copied file (module type, "exports") and the
 * symlinks of every node_modules directory on the way (workspace links, pnpm's relative dependency links), so
 * resolution inside the mirror never reaches the original tree. A file the mirror lacks makes the child fail
 * to load, loudly — never a silent fallback to the 9p tree.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MARK = '@@tj-module ';

/** The hooks module given to `node --import`: logs every loaded file on stderr, one MARK line each. */
const HOOKS = `
import { register, createRequire } from 'node:module';
import { writeSync } from 'node:fs';
const MARK = ${JSON.stringify(MARK)};
register('data:text/javascript,' + encodeURIComponent(
  "import { writeSync } from 'node:fs';" +
  "export async function load(url, ctx, next) { if (url.startsWith('file:')) writeSync(2, " + JSON.stringify(MARK) + " + url + '\\\\n'); return next(url, ctx); }"));
const Module = createRequire(import.meta.url)('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const r = resolve.apply(this, args);
  if (typeof r === 'string' && r.startsWith('/')) writeSync(2, MARK + r + '\\n');
  return r;
};
`;

/** Runs `node --import <hooks> <entry> ...args` to completion and returns the absolute paths it loaded. */
export async function discoverModules(scratch: string, entry: string, args: readonly string[]): Promise<string[]> {
  mkdirSync(scratch, { recursive: true });
  const hooks = path.join(scratch, 'discover-hooks.mjs');
  writeFileSync(hooks, HOOKS);
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', hooks, entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let out = '';
    c.stdout.on('data', (d) => (out += String(d)));
    c.stderr.on('data', (d) => (err += String(d)));
    c.on('error', reject);
    c.on('close', (code) => {
      if (code !== 0) return reject(new Error(`module discovery (${entry}) exited ${code}: ${err.split('\n').filter((l) => !l.startsWith(MARK)).join('\n')}${out}`));
      const files = new Set<string>();
      for (const line of err.split('\n')) {
        if (!line.startsWith(MARK)) continue;
        const s = line.slice(MARK.length);
        files.add(s.startsWith('file:') ? fileURLToPath(s) : s);
      }
      files.add(entry);
      resolve([...files].filter((f) => f !== hooks));
    });
  });
}

export interface StageResult {
  /** The mirror root: the original /a/b/c.js is at `${root}/a/b/c.js`. */
  readonly root: string;
  readonly files: number;
  readonly links: number;
}

export function stageModules(root: string, opts: { projectRoot: string; files: readonly string[] }): StageResult {
  const project = path.resolve(opts.projectRoot);
  const inProject = (p: string) => p === project || p.startsWith(project + path.sep);
  const files = new Set(opts.files.filter(inProject));
  const outside = opts.files.filter((f) => !inProject(f));
  if (outside.length) throw new Error(`modules outside ${project} cannot be staged: ${outside.slice(0, 3).join(', ')}`);
  const mirror = (p: string) => path.join(root, p);
  let links = 0;

  const copyLinksOf = (nm: string) => {
    for (const ent of readdirSync(nm, { withFileTypes: true })) {
      const p = path.join(nm, ent.name);
      if (ent.isDirectory() && ent.name.startsWith('@')) {
        copyLinksOf(p);
        continue;
      }
      if (!ent.isSymbolicLink()) continue;
      const target = readlinkSync(p);
      mkdirSync(path.dirname(mirror(p)), { recursive: true });
      if (isLink(mirror(p))) continue;
      // pnpm's links are relative and so stay inside the mirror; an absolute one into the project is re-pointed.
      symlinkSync(path.isAbsolute(target) && inProject(target) ? mirror(target) : target, mirror(p));
      links++;
    }
  };
  const visited = new Set<string>();
  for (const f of [...files]) {
    for (let d = path.dirname(f); inProject(d) && !visited.has(d); d = path.dirname(d)) {
      visited.add(d);
      const pj = path.join(d, 'package.json');
      if (existsSync(pj)) files.add(pj);
      const nm = path.join(d, 'node_modules');
      if (path.basename(d) !== 'node_modules' && existsSync(nm)) copyLinksOf(nm);
      if (d === project) break;
    }
  }
  for (const f of files) {
    mkdirSync(path.dirname(mirror(f)), { recursive: true });
    copyFileSync(f, mirror(f));
  }
  return { root, files: files.size, links };
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
