/**
 * `thinjournal` — the command line. Exit codes (documented in the README and in `--help`):
 *   0 ok · 1 error · 2 usage or malformed input, refused before anything was done (usage errors, ERR_BAD_ID,
 *   ERR_BAD_SIZE, ERR_BAD_OPTION) · 3 drift found · 4 corruption found (including a torn tail)
 * Output: dump, tail and ls print JSON (Lines) when piped; every command prints JSON with --json (one object or
 * array; dump/tail one record a line). Errors go to stderr as `CODE: message`. A reader that closes the pipe
 * (`| head`) ends the command quietly with exit 0; any other failed write of the output is ERR_OUTPUT, exit 1.
 */
import { parseArgs } from 'node:util';
import { ThinjournalError, EVENT_TYPES, chainError, type ChainProblem, type ChainResult, type JournalRecord } from '@thinjournal/spec';
import { BASE_HASH, checkHash } from '@thinjournal/model';
import { Journal } from '@thinjournal/journal';
import { RECOVERY_COMMANDS, backendFor, printPlan } from './recovery.js';
import { DEVICE_COMMANDS } from './devices.js';
import { Engine, verifyModel } from '@thinjournal/reconciler';
import { layoutOf, preparePoolDevices } from '@thinjournal/driver';
import { runDaemon } from '@thinjournal/snapshotter';
import {
  EXIT, EXIT_CODES_HELP, OutputError, UsageError, absoluteHome, journalDir, openForReading, progress, printTable, type Command, type Io, type Options,
} from './common.js';
export { EXIT, guardOutput, quietOutput, type Io, type Out } from './common.js';

const COMMON: Options = {
  home: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** `--since`/`--until`: an integer is a seq; anything else must parse as a date/time. */
function parseBound(name: string, text: string | undefined): { seq?: number; ts?: number } {
  if (text === undefined) return {};
  if (text.trim() === '') throw new UsageError(`--${name} is empty (a seq or a date/time)`);
  if (/^\d+$/.test(text)) {
    const seq = Number(text);
    if (!Number.isSafeInteger(seq)) throw new UsageError(`--${name} ${text}: seq out of range`);
    return { seq };
  }
  const ts = Date.parse(text);
  if (Number.isNaN(ts)) throw new UsageError(`--${name} "${text}" is neither a seq nor a date/time (e.g. 2026-11-24T10:00:00Z)`);
  return { ts };
}

interface Filter { readonly types: ReadonlySet<string> | null; readonly device?: string; readonly actor?: string; readonly sinceTs?: number; readonly untilTs?: number; readonly fromSeq: number; readonly toSeq: number }

/** `--device`: a device id, or `base` for the base image (whose hash is ""; no device may be named base). */
function parseDevice(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (text === 'base') return BASE_HASH;
  return checkHash(text, { what: '--device' });
}

function buildFilter(v: Record<string, unknown>): Filter {
  const since = parseBound('since', v.since as string | undefined);
  const until = parseBound('until', v.until as string | undefined);
  // A window that ends before it starts selects nothing, whatever the journal holds.
  if ((since.seq !== undefined && until.seq !== undefined && since.seq > until.seq) || (since.ts !== undefined && until.ts !== undefined && since.ts > until.ts)) {
    throw new UsageError(`--since ${String(v.since)} is after --until ${String(v.until)}: no record can match`);
  }
  let types: Set<string> | null = null;
  if (v.type !== undefined) {
    const list = String(v.type).split(',').map((t) => t.trim());
    if (list.some((t) => t === '')) throw new UsageError(`--type "${String(v.type)}" has an empty entry (a comma-separated list of event types)`);
    types = new Set(list);
    for (const t of types) if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new UsageError(`--type: unknown event type "${t}" (known: ${EVENT_TYPES.join(', ')})`);
  }
  return {
    types, device: parseDevice(v.device as string | undefined), actor: v.actor as string | undefined,
    sinceTs: since.ts, untilTs: until.ts, fromSeq: since.seq ?? 1, toSeq: until.seq ?? Infinity,
  };
}

/** `tail -n`: a whole number ≥ 0 (default 10). */
function parseCount(text: string | undefined): number {
  if (text === undefined) return 10;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new UsageError(`-n "${text}" is not a count (a whole number ≥ 0)`);
  return n;
}

/** Longest delay a Node timer takes; a longer one fires after 1 ms instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** `tail --interval`: milliseconds between polls of a followed journal, 50 … 2^31 − 1; only with -f. */
function parseInterval(text: string | undefined, follow: boolean): number {
  if (text === undefined) return 1000;
  if (!follow) throw new UsageError(`--interval ${text} applies only with -f (how often a followed journal is polled)`);
  const ms = Number(text);
  if (!/^\d+$/.test(text) || ms < 50 || ms > MAX_TIMER_MS) throw new UsageError(`--interval "${text}" must be a whole number of milliseconds from 50 to ${MAX_TIMER_MS}`);
  return ms;
}

function matches(f: Filter, r: JournalRecord): boolean {
  if (r.seq < f.fromSeq || r.seq > f.toSeq) return false;
  if (f.sinceTs !== undefined && r.ts < f.sinceTs) return false;
  if (f.untilTs !== undefined && r.ts > f.untilTs) return false;
  if (f.types && !f.types.has(r.type)) return false;
  if (f.actor !== undefined && r.actor !== f.actor) return false;
  if (f.device !== undefined && r.body.hash !== f.device && r.body.parentHash !== f.device) return false;
  return true;
}

function jsonLine(r: JournalRecord): string {
  return JSON.stringify({ seq: r.seq, txId: r.txId, ts: new Date(r.ts).toISOString(), actor: r.actor, reason: r.reason, type: r.type, body: r.body, prev: r.prev, hash: r.hash }) + '\n';
}

const COLUMNS = ['seq', 'time', 'tx', 'actor', 'type', 'device', 'detail'] as const;
function tableRow(r: JournalRecord): string[] {
  const { hash, ...rest } = r.body as Record<string, unknown>;
  const detail = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ');
  return [String(r.seq), new Date(r.ts).toISOString().replace('T', ' ').replace('Z', ''), String(r.txId), r.actor, r.type, hash === undefined ? '' : hash === '' ? '(base)' : String(hash), detail];
}

const FILTERS: Options = {
  since: { type: 'string' }, until: { type: 'string' }, device: { type: 'string' }, type: { type: 'string' }, actor: { type: 'string' },
};

const commands: Record<string, Command> = {
  ...DEVICE_COMMANDS,
  ...RECOVERY_COMMANDS,
  snapshotter: {
    summary: "serve containerd's snapshotter API (proxy plugin) on a unix socket, on this home's pool, until SIGTERM/SIGINT",
    usage: 'thinjournal snapshotter [--home DIR] --socket PATH [--opt dm.key=value]… [--teardown]   (--teardown: at exit also remove the pool and its loop devices, for throw-away homes)',
    example: 'thinjournal snapshotter --home /var/lib/thinjournal --socket /run/thinjournal/snapshotter.sock --opt dm.basesize=20G',
    options: { socket: { type: 'string' }, opt: { type: 'string', multiple: true }, teardown: { type: 'boolean' } },
    async run(v, _p, io) {
      if (typeof v.socket !== 'string' || v.socket === '') throw new UsageError('--socket PATH is required');
      const socket = v.socket.startsWith('/') ? v.socket : `${process.cwd()}/${v.socket}`;
      return runDaemon({ home: absoluteHome(v, io), socket, options: (v.opt as string[] | undefined) ?? [], teardown: v.teardown === true, ...(io.backend ? { backend: io.backend } : {}), log: (l) => io.stderr.write(`${l}\n`) });
    },
  },
  dump: {
    summary: 'print journal records (JSON Lines when piped or with --json, a table on a TTY)',
    usage: 'thinjournal dump [--home DIR] [--since SEQ|TIME] [--until SEQ|TIME] [--device HASH|base] [--type T[,T…]] [--actor A] [--verify] [--json]',
    example: 'thinjournal dump --home /var/lib/thinjournal --device layer1 --since 2026-11-24T00:00:00Z | jq .type',
    options: { ...FILTERS, verify: { type: 'boolean' } },
    async run(v, _p, io) {
      const filter = buildFilter(v);
      const json = v.json === true || !io.stdout.isTTY;
      // Damaged LevelDB files are refused before anything is printed (LevelDB is never asked to read them).
      // Otherwise records stream as they are read, and what is found on the way — a torn tail, or with --verify
      // the first break of the chain — is reported after them, on stderr, exit 4.
      const j = await openForReading(journalDir(v, io), { allowTornTail: true });
      try {
        const rows: string[][] = [];
        const emit = (r: JournalRecord) => {
          if (!matches(filter, r)) return;
          if (json) io.stdout.write(jsonLine(r));
          else rows.push(tableRow(r));
        };
        let problem: ChainProblem | null = null;
        if (v.verify === true) {
          // The same checks as `verify`: LevelDB's files, keys, the chain, then the model.
          const rep = await j.verify({ onRecord: emit });
          if (!rep.result.ok) problem = rep.result;
          else {
            const model = await verifyModel(j, { checkpoints: rep.checkpoints.valid });
            if (!model.ok) problem = model;
          }
        } else {
          try {
            for await (const r of j.iterate({ fromSeq: filter.fromSeq, toSeq: filter.toSeq, since: filter.sinceTs, until: filter.untilTs })) emit(r);
          } catch (err) {
            if (!json) printTable(io.stdout, rows, COLUMNS);
            throw err;
          }
          problem = j.storeProblem();
        }
        if (!json) printTable(io.stdout, rows, COLUMNS);
        if (problem) {
          const e = chainError(problem);
          io.stderr.write(`${e.code}: ${e.message}\n`);
          return EXIT.CORRUPT;
        }
        return EXIT.OK;
      } finally {
        await j.close();
      }
    },
  },
  verify: {
    summary: 'walk the whole hash chain and every checkpoint (exit 4 on corruption or a torn tail); --kernel: also compare with the kernel\'s pool (exit 3 on drift)',
    usage: 'thinjournal verify [--home DIR] [--kernel] [--json]',
    example: 'thinjournal verify --home /var/lib/thinjournal --kernel --json',
    options: { kernel: { type: 'boolean' } },
    async run(v, _p, io) {
      const j = await openForReading(journalDir(v, io), { allowTornTail: true });
      try {
        const bar = progress(io, 'verifying');
        const rep = await j.verify({ onProgress: (n, total) => bar.update(n, total) });
        bar.done();
        // Last, the model: every record applied from seq 1, each checkpoint's state hash compared.
        let model: ChainResult | null = null;
        if (rep.result.ok) {
          const mbar = progress(io, 'replaying');
          model = await verifyModel(j, { checkpoints: rep.checkpoints.valid, onProgress: (n) => mbar.update(n, rep.result.records) });
          mbar.done();
        }
        const r: ChainResult = model && !model.ok ? model : rep.result;
        // The kernel comparison is the recovery planner run dry: drift is what it cannot explain.
        const kernel = r.ok && v.kernel === true ? (await Engine.open(j, backendFor(io))) : null;
        let plan = null;
        if (kernel && kernel.state.pool) {
          // As recover --dry-run sees it: a loopback pool's files where they are, attached or not.
          const devices = await preparePoolDevices(kernel, kernel.backend, layoutOf(absoluteHome(v, io)), { dryRun: true });
          plan = (await kernel.recover({ dryRun: true, ...devices.view })).plan;
        }
        if (v.json === true) {
          io.stdout.write(JSON.stringify({ ...r, checkpoints: rep.checkpoints, store: rep.store, model: model === null ? null : model.ok, ...(v.kernel === true ? { kernel: plan } : {}) }) + '\n');
        } else if (r.ok) {
          io.stdout.write(`ok: ${r.records} records, head seq ${r.last?.seq ?? 0}${r.last ? ` hash ${r.last.hash}` : ''}; LevelDB's files ok; model ok; checkpoints valid: ${rep.checkpoints.valid.length}, invalid: ${rep.checkpoints.invalid.length}\n`);
          for (const c of rep.checkpoints.invalid) io.stdout.write(`  invalid checkpoint at seq ${c.seq}: ${c.message}\n`);
        } else {
          const where = r.file !== undefined ? `in ${r.file}${r.offset !== undefined && r.offset !== null ? ` at offset ${r.offset}` : ''}` : r.key !== undefined ? `at key ${JSON.stringify(r.key)}` : `at seq ${r.seq}`;
          io.stdout.write(`${r.kind === 'torn' ? 'TORN TAIL (ERR_JOURNAL_TORN)' : 'CORRUPT (ERR_JOURNAL_CORRUPT)'} ${where}: ${r.reason}: ${r.message} (${r.records} records verified before it)\n`);
        }
        if (plan && v.json !== true) {
          io.stdout.write('kernel: ');
          printPlan(io, plan);
        }
        if (!r.ok) return EXIT.CORRUPT;
        return plan?.verdict === 'drift' ? EXIT.DRIFT : EXIT.OK;
      } finally {
        await j.close();
      }
    },
  },
  tail: {
    summary: 'print the last records; with -f, keep following new ones (from another process: by polling a copy)',
    usage: 'thinjournal tail [-f [--interval MS]] [-n N] [--home DIR] [filters as dump] [--json]',
    example: 'thinjournal tail -f --type DeviceMounted,DeviceUnmounted',
    options: { ...FILTERS, follow: { type: 'boolean', short: 'f' }, lines: { type: 'string', short: 'n' }, interval: { type: 'string' } },
    async run(v, _p, io) {
      const filter = buildFilter(v);
      const n = parseCount(v.lines as string | undefined);
      const interval = parseInterval(v.interval as string | undefined, v.follow === true);
      const json = v.json === true || !io.stdout.isTTY;
      const dir = journalDir(v, io);
      const print = (r: JournalRecord) => { if (matches(filter, r)) io.stdout.write(json ? jsonLine(r) : tableRow(r).join('  ') + '\n'); };
      let j = await openForReading(dir);
      let next: number;
      try {
        const head = j.head().seq;
        const recent: JournalRecord[] = [];
        for await (const r of j.iterate({ fromSeq: Math.max(1, head - Math.max(n * 50, 1000)) })) {
          if (!matches(filter, r)) continue;
          recent.push(r);
          if (recent.length > n) recent.shift();
        }
        recent.forEach(print);
        next = head + 1;
      } finally {
        await j.close();
      }
      if (v.follow !== true) return EXIT.OK;
      // Follow: reopen (or re-copy) every `interval` ms and print what is new. Stops on SIGINT/SIGTERM.
      let stop = false;
      const onSignal = () => { stop = true; };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        while (!stop) {
          await new Promise((r) => setTimeout(r, interval));
          j = await openForReading(dir);
          try {
            for await (const r of j.iterate({ fromSeq: next })) { print(r); next = r.seq + 1; }
          } finally {
            await j.close();
          }
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      return EXIT.OK;
    },
  },
};

function help(io: Io, name?: string): void {
  if (name && commands[name]) {
    const c = commands[name]!;
    io.stdout.write(`${c.usage}\n\n${c.summary}\n\nexample:\n  ${c.example}\n\n${EXIT_CODES_HELP}\n`);
    return;
  }
  io.stdout.write('usage: thinjournal <command> [options]\n\ncommands:\n');
  for (const [n, c] of Object.entries(commands)) io.stdout.write(`  ${n.padEnd(9)} ${c.summary}\n`);
  io.stdout.write('\ncommon options: --home DIR (default $THINJOURNAL_HOME or /var/lib/thinjournal), --json, --help\n');
  io.stdout.write(`${EXIT_CODES_HELP}\n`);
  io.stdout.write('`thinjournal <command> --help` shows an example.\n');
}

/** String options whose empty value means something (the base image); every other one must not be empty. */
const EMPTY_ALLOWED: Readonly<Record<string, readonly string[]>> = { create: ['parent'], snapshot: ['from'] };

/** Options of a command that contradict each other: [a, b, why]. */
const EXCLUSIVE: Readonly<Record<string, readonly (readonly [string, string, string])[]>> = {
  recover: [['dry-run', 'repair', '--dry-run changes nothing and --repair applies the repair plan; run --dry-run first, then --repair']],
  lineage: [['json', 'format', '--json prints the tree as JSON; --format chooses a text rendering']],
};

/**
 * What parseArgs lets through but no command can mean: a string option given twice (the last would silently
 * win), an empty or blank value, and contradictory options.
 */
function checkOptions(name: string, options: Options, tokens: readonly { kind: string; name?: string; rawName?: string; value?: string | undefined }[]): void {
  const seen = new Map<string, string>();
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name === undefined) continue;
    const spec = options[t.name];
    if (!spec || spec.type !== 'string' || t.value === undefined) continue;
    const raw = t.rawName ?? `--${t.name}`;
    if (t.value.trim() === '' && !(t.value === '' && EMPTY_ALLOWED[name]?.includes(t.name))) {
      throw new UsageError(t.value === '' ? `${raw} is empty` : `${raw} ${JSON.stringify(t.value)} is blank`);
    }
    if (spec.multiple) continue;
    const first = seen.get(t.name);
    if (first !== undefined) throw new UsageError(`${raw} given twice (${JSON.stringify(first)}, then ${JSON.stringify(t.value)}); give it once`);
    seen.set(t.name, t.value);
  }
  for (const [a, b, why] of EXCLUSIVE[name] ?? []) {
    const has = (o: string) => tokens.some((t) => t.kind === 'option' && t.name === o);
    if (has(a) && has(b)) throw new UsageError(`--${a} and --${b} contradict each other: ${why}`);
  }
}

/** The OutputError an error is, or was caused by (a write failed inside a callback that wrapped it). */
function outputFailure(err: unknown): OutputError | null {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof OutputError) return e;
  }
  return null;
}

/** A diagnostic on stderr; a failing stderr cannot be reported anywhere, so it does not change the outcome. */
function diagnose(io: Io, text: string): void {
  try { io.stderr.write(text); } catch { /* nowhere left to report it */ }
}

/**
 * Runs one command line and returns its exit code. Output failures: EPIPE (the reader closed the pipe, as in
 * `thinjournal dump | head -1`) stops the command quietly with 0, or the command's own code when the failure
 * showed only at the final flush; any other failed write (ENOSPC, EIO) is `ERR_OUTPUT: …` on stderr and 1
 * (or the command's own non-zero code).
 */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  let code: number;
  try {
    code = await dispatch(argv, io);
  } catch (err) {
    const out = outputFailure(err);
    if (!out) throw err;
    if (out.closed) return EXIT.OK;
    diagnose(io, `${out.code}: ${out.message}\n`);
    return EXIT.ERROR;
  }
  try {
    await io.stdout.flush?.();
  } catch (err) {
    const out = outputFailure(err);
    if (!out) throw err;
    if (out.closed) return code;
    diagnose(io, `${out.code}: ${out.message}\n`);
    return code === EXIT.OK ? EXIT.ERROR : code;
  }
  return code;
}

async function dispatch(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    help(io);
    return EXIT.USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const [topic, ...extra] = rest;
    if (extra.length > 0) {
      diagnose(io, `usage: unexpected argument "${extra[0]}"; thinjournal help [COMMAND]\n`);
      return EXIT.USAGE;
    }
    if (topic !== undefined && !commands[topic]) {
      diagnose(io, `usage: unknown command "${topic}"; see thinjournal --help\n`);
      return EXIT.USAGE;
    }
    help(io, topic);
    return EXIT.OK;
  }
  const cmd = commands[name];
  if (!cmd) {
    diagnose(io, `usage: unknown command "${name}"; see thinjournal --help\n`);
    return EXIT.USAGE;
  }
  try {
    const options = { ...COMMON, ...cmd.options };
    let parsed;
    try {
      parsed = parseArgs({ args: [...rest], options, strict: true, allowPositionals: cmd.positionals !== undefined, tokens: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (parsed.values.help) { help(io, name); return EXIT.OK; }
    checkOptions(name, options, parsed.tokens);
    if (cmd.positionals) {
      const { min, max, names } = cmd.positionals;
      if (parsed.positionals.length < min) throw new UsageError(`missing ${names}`);
      if (parsed.positionals.length > max) throw new UsageError(`unexpected argument "${parsed.positionals[max]}" (takes ${names})`);
    }
    return await cmd.run(parsed.values as Record<string, unknown>, parsed.positionals, io);
  } catch (err) {
    if (outputFailure(err)) throw err;
    if (err instanceof UsageError) {
      diagnose(io, `usage: ${err.message}\n${cmd.usage}\n`);
      return EXIT.USAGE;
    }
    const code = (err as { code?: string }).code ?? 'ERR_UNEXPECTED';
    diagnose(io, `${code}: ${(err as Error).message}\n`);
    return exitFor(err);
  }
}

const CORRUPTION = new Set(['ERR_JOURNAL_CORRUPT', 'ERR_JOURNAL_TORN', 'ERR_STATE_HASH_MISMATCH']);

/**
 * Validation codes. Each is raised by a check that runs before the command changes anything (decide refuses
 * before an intent is journaled; the driver parses options and storage options before touching the kernel),
 * so such an error means the input was malformed or refused and nothing was done.
 */
const MALFORMED = new Set(['ERR_BAD_ID', 'ERR_BAD_SIZE', 'ERR_BAD_OPTION']);

/**
 * The exit code of an error: 4 when it is (or was caused by) corruption of the journal, 3 when it is drift
 * (ERR_DRIFT, or the driver refusing to start because recovery found drift: ERR_THINPOOL_INIT carrying a
 * drift plan), 2 when it is a validation error itself (not merely caused by one: a wrapped one was met in the
 * middle of something else), 1 otherwise.
 */
function exitFor(err: unknown): number {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ThinjournalError && CORRUPTION.has(e.code)) return EXIT.CORRUPT;
  }
  if (err instanceof ThinjournalError) {
    if (err.code === 'ERR_DRIFT') return EXIT.DRIFT;
    if (err.code === 'ERR_THINPOOL_INIT' && (err as { plan?: { verdict?: string } }).plan?.verdict === 'drift') return EXIT.DRIFT;
    if (MALFORMED.has(err.code)) return EXIT.USAGE;
  }
  return EXIT.ERROR;
}
