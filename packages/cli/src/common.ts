/** What every command shares: exit codes, IO, usage errors, the journal location, progress, tables. */
import path from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { Journal } from '@thinjournal/journal';
import type { Backend } from '@thinjournal/dm';

export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, DRIFT: 3, CORRUPT: 4 } as const;

export interface Out { write(s: string): unknown; isTTY?: boolean; columns?: number }
export interface Io {
  stdout: Out;
  stderr: Out;
  env: Record<string, string | undefined>;
  /** The device-mapper backend for the device commands, recover and replay (tests inject a ModelBackend); default: the kernel's. */
  backend?: Backend;
}

export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;
export interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly example: string;
  readonly options: Options;
  /** Positional arguments the command takes (absent: none). Too few or too many is a usage error. */
  readonly positionals?: { readonly min: number; readonly max: number; readonly names: string };
  run(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number>;
}

/** The home directory: --home, else $THINJOURNAL_HOME, else /var/lib/thinjournal (as given; see absoluteHome). */
export function homeDir(values: Record<string, unknown>, io: Io): string {
  const home = (values.home as string | undefined) ?? io.env.THINJOURNAL_HOME ?? '/var/lib/thinjournal';
  if (home === '') throw new UsageError('--home is empty');
  if (home.includes('\0')) throw new UsageError('--home contains NUL');
  return home;
}

/** The home as the driver wants it: absolute and normalised (a relative --home is taken from the cwd). */
export function absoluteHome(values: Record<string, unknown>, io: Io): string {
  return path.resolve(homeDir(values, io));
}

export function journalDir(values: Record<string, unknown>, io: Io): string {
  return path.join(homeDir(values, io), 'journal');
}

/**
 * Opens for reading, from a private copy: the journal's files are never written and its lock is never taken,
 * so an audit never changes what it examines nor makes a device operation of a running writer fail.
 * `allowDamage`: open even if LevelDB's files are damaged (verify and dump report it themselves).
 */
export async function openForReading(dir: string, opts: { allowDamage?: boolean } = {}): Promise<Journal> {
  return Journal.openReader(dir, opts);
}

/** Aligned table; widths from the rows printed, detail truncated to the terminal width. */
export function printTable(out: Out, rows: string[][], columns: readonly string[]): void {
  const COLS = columns;
  const widths = COLS.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: readonly string[]) => {
    const line = r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
    const max = out.columns && out.columns > 20 ? out.columns : 160; // a pty may report 0 columns
    return (line.length > max ? line.slice(0, max - 1) + '…' : line) + '\n';
  };
  out.write(fmt(COLS));
  for (const r of rows) out.write(fmt(r));
}

export function progress(io: Io, label: string): { update(n: number, total: number): void; done(): void } {
  if (!io.stderr.isTTY) return { update() {}, done() {} };
  let last = 0;
  return {
    update(n, total) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      const frac = total > 0 ? Math.min(1, n / total) : 0;
      const width = 30;
      const bar = '█'.repeat(Math.round(frac * width)).padEnd(width, '░');
      io.stderr.write(`\r${label} ${bar} ${n}/${total} records`);
    },
    done() { io.stderr.write('\r\x1b[K'); },
  };
}

