/** What every command shares: exit codes, IO, usage errors, the journal location, progress, tables. */
import path from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { Journal } from '@thinjournal/journal';
import type { Backend } from '@thinjournal/dm';
import { ThinjournalError } from '@thinjournal/spec';

/**
 * Exit codes. USAGE (2): the input was malformed or refused before anything was done — usage errors and the
 * coded validation errors ERR_BAD_ID, ERR_BAD_SIZE, ERR_BAD_OPTION. ERROR (1): any other error.
 */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, DRIFT: 3, CORRUPT: 4 } as const;

/** The exit-code line of `--help` (the README's table says the same at length). */
export const EXIT_CODES_HELP = 'exit codes: 0 ok (also when the reader of the output closed the pipe), 1 error, 2 usage or malformed input (refused, nothing done), 3 drift found, 4 corruption found';

export interface Out {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
  /** Resolves once everything written so far has reached the OS; rejects with the write's ERR_OUTPUT. */
  flush?(): Promise<void>;
}
export interface Io {
  stdout: Out;
  stderr: Out;
  env: Record<string, string | undefined>;
  /** The device-mapper backend for the device commands, recover and replay (tests inject a ModelBackend); default: the kernel's. */
  backend?: Backend;
}

export class UsageError extends Error {}

/**
 * A failed write to the command's output, as ERR_OUTPUT: `errno` is the errno name (EPIPE, ENOSPC, EIO, …),
 * the stream's error is the `cause`. `closed`: EPIPE — the reader went away (`thinjournal dump | head -1`).
 */
export class OutputError extends ThinjournalError {
  declare readonly errno: string;
  declare readonly closed: boolean;
  constructor(cause: unknown) {
    const errno = typeof (cause as { code?: unknown })?.code === 'string' ? (cause as { code: string }).code : 'EIO';
    const text = cause instanceof Error ? cause.message : String(cause);
    super('ERR_OUTPUT', `writing the command's output to stdout failed: ${text.startsWith(errno) ? text : `${errno}: ${text}`}`, { cause, errno, closed: errno === 'EPIPE' });
  }
}

/**
 * `stream` as an Out whose failures are thrown where the command writes. A stream reports a failed write
 * (EPIPE, ENOSPC, …) by an 'error' event or the write's callback, after the write call returned; from then on
 * every write throws that failure as an OutputError, so the command stops at its next write (unwinding
 * through its finally blocks: journals closed), and `flush` makes the last writes' failure visible before
 * the exit code is chosen. Without the 'error' listener Node would crash with the stack of an unhandled error.
 */
export function guardOutput(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }): Out {
  let failed: OutputError | null = null;
  const fail = (err: unknown): OutputError => (failed ??= err instanceof OutputError ? err : new OutputError(err));
  stream.on('error', fail);
  return {
    get isTTY() { return stream.isTTY === true; },
    get columns() { return stream.columns; },
    write(s: string) {
      if (failed) throw failed;
      try {
        return stream.write(s, (err) => { if (err) fail(err); });
      } catch (err) {
        throw fail(err);
      }
    },
    flush() {
      return new Promise<void>((resolve, reject) => {
        if (failed) { reject(failed); return; }
        // Callbacks run in write order: this one runs after every earlier write finished (or failed).
        stream.write('', (err) => {
          if (err) fail(err);
          if (failed) reject(failed); else resolve();
        });
      });
    },
  };
}

/**
 * `stream` as the Out for diagnostics (stderr): a failed write is dropped — there is nowhere left to report
 * it — instead of crashing the process.
 */
export function quietOutput(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }): Out {
  let failed = false;
  stream.on('error', () => { failed = true; });
  return {
    get isTTY() { return stream.isTTY === true; },
    get columns() { return stream.columns; },
    write(s: string) {
      if (failed) return false;
      try {
        return stream.write(s, () => {});
      } catch {
        failed = true;
        return false;
      }
    },
  };
}

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
 * `allowTornTail`: open even if LevelDB's log ends in a torn final write (verify and dump report it themselves).
 */
export async function openForReading(dir: string, opts: { allowTornTail?: boolean } = {}): Promise<Journal> {
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

