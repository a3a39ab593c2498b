/**
 * `thinjournal` — the command line. Exit codes (documented in the README and in `--help`):
 *   0 ok · 1 error · 2 usage · 3 drift found · 4 corruption found (including a torn tail)
 * Output: dump, tail and ls print JSON (Lines) when piped; every command prints JSON with --json (one object or
 * array; dump/tail one record a line). Errors go to stderr as `CODE: message`.
 */
import { parseArgs } from 'node:util';
import { ThinjournalError, EVENT_TYPES, type JournalRecord } from '@thinjournal/spec';
import { Journal } from '@thinjournal/journal';
import { RECOVERY_COMMANDS, backendFor, printPlan } from './recovery.js';
import { DEVICE_COMMANDS } from './devices.js';
import { Engine } from '@thinjournal/reconciler';
import { EXIT, UsageError, journalDir, openForReading, progress, printTable, type Command, type Io, type Options, type Out } from './common.js';
export { EXIT, type Io, type Out } from './common.js';

const COMMON: Options = {
  home: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** `--since`/`--until`: an integer is a seq; anything else must parse as a date/time. */
function parseBound(name: string, text: string | undefined): { seq?: number; ts?: number } {
  if (text === undefined) return {};
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

function buildFilter(v: Record<string, unknown>): Filter {
  const since = parseBound('since', v.since as string | undefined);
  const until = parseBound('until', v.until as string | undefined);
  let types: Set<string> | null = null;
  if (v.type !== undefined) {
    types = new Set(String(v.type).split(',').map((t) => t.trim()).filter(Boolean));
    for (const t of types) if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new UsageError(`--type: unknown event type "${t}" (known: ${EVENT_TYPES.join(', ')})`);
  }
  return {
    types, device: v.device as string | undefined, actor: v.actor as string | undefined,
    sinceTs: since.ts, untilTs: until.ts, fromSeq: since.seq ?? 1, toSeq: until.seq ?? Infinity,
  };
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
  dump: {
    summary: 'print journal records (JSON Lines when piped or with --json, a table on a TTY)',
    usage: 'thinjournal dump [--home DIR] [--since SEQ|TIME] [--until SEQ|TIME] [--device HASH] [--type T[,T…]] [--actor A] [--verify] [--json]',
    example: 'thinjournal dump --home /var/lib/thinjournal --device layer1 --since 2026-11-24T00:00:00Z | jq .type',
    options: { ...FILTERS, verify: { type: 'boolean' } },
    async run(v, _p, io) {
      const filter = buildFilter(v);
      const json = v.json === true || !io.stdout.isTTY;
      const j = await openForReading(journalDir(v, io));
      try {
        const rows: string[][] = [];
        const emit = (r: JournalRecord) => {
          if (!matches(filter, r)) return;
          if (json) io.stdout.write(jsonLine(r));
          else rows.push(tableRow(r));
        };
        let code: number = EXIT.OK;
        if (v.verify === true) {
          const rep = await j.verify({ onRecord: emit });
          if (!rep.result.ok) {
            io.stderr.write(`${rep.result.kind === 'torn' ? 'ERR_JOURNAL_TORN' : 'ERR_JOURNAL_CORRUPT'}: chain broken at seq ${rep.result.seq}: ${rep.result.reason}: ${rep.result.message}\n`);
            code = EXIT.CORRUPT;
          }
        } else {
          for await (const r of j.iterate({ fromSeq: filter.fromSeq, toSeq: filter.toSeq, since: filter.sinceTs, until: filter.untilTs })) emit(r);
        }
        if (!json) printTable(io.stdout, rows, COLUMNS);
        return code;
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
      const j = await openForReading(journalDir(v, io));
      try {
        const bar = progress(io, 'verifying');
        const rep = await j.verify({ onProgress: (n, total) => bar.update(n, total) });
        bar.done();
        const r = rep.result;
        // The kernel comparison is the recovery planner run dry: drift is what it cannot explain.
        const kernel = r.ok && v.kernel === true ? (await Engine.open(j, backendFor(io))) : null;
        const plan = kernel && kernel.state.pool ? (await kernel.recover({ dryRun: true })).plan : null;
        if (v.json === true) {
          io.stdout.write(JSON.stringify({ ...r, checkpoints: rep.checkpoints, ...(v.kernel === true ? { kernel: plan } : {}) }) + '\n');
        } else if (r.ok) {
          io.stdout.write(`ok: ${r.records} records, head seq ${r.last?.seq ?? 0}${r.last ? ` hash ${r.last.hash}` : ''}; checkpoints valid: ${rep.checkpoints.valid.length}, invalid: ${rep.checkpoints.invalid.length}\n`);
          for (const c of rep.checkpoints.invalid) io.stdout.write(`  invalid checkpoint at seq ${c.seq}: ${c.message}\n`);
        } else {
          io.stdout.write(`${r.kind === 'torn' ? 'TORN TAIL' : 'CORRUPT'} at seq ${r.seq}: ${r.reason}: ${r.message} (${r.records} records verified before it)\n`);
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
    usage: 'thinjournal tail [-f] [-n N] [--home DIR] [filters as dump] [--json]',
    example: 'thinjournal tail -f --type DeviceMounted,DeviceUnmounted',
    options: { ...FILTERS, follow: { type: 'boolean', short: 'f' }, lines: { type: 'string', short: 'n' }, interval: { type: 'string' } },
    async run(v, _p, io) {
      const filter = buildFilter(v);
      const n = v.lines === undefined ? 10 : Number(v.lines);
      if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`-n "${String(v.lines)}" is not a count`);
      const interval = v.interval === undefined ? 1000 : Number(v.interval);
      if (!Number.isFinite(interval) || interval < 50) throw new UsageError(`--interval "${String(v.interval)}" must be ≥ 50 ms`);
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
    io.stdout.write(`${c.usage}\n\n${c.summary}\n\nexample:\n  ${c.example}\n\nexit codes: 0 ok, 1 error, 2 usage, 3 drift found, 4 corruption found\n`);
    return;
  }
  io.stdout.write('usage: thinjournal <command> [options]\n\ncommands:\n');
  for (const [n, c] of Object.entries(commands)) io.stdout.write(`  ${n.padEnd(9)} ${c.summary}\n`);
  io.stdout.write('\ncommon options: --home DIR (default $THINJOURNAL_HOME or /var/lib/thinjournal), --json, --help\n');
  io.stdout.write('exit codes: 0 ok, 1 error, 2 usage, 3 drift found, 4 corruption found\n');
  io.stdout.write('`thinjournal <command> --help` shows an example.\n');
}

export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    help(io, name === 'help' ? rest[0] : undefined);
    return name === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const cmd = commands[name];
  if (!cmd) {
    io.stderr.write(`usage: unknown command "${name}"; see thinjournal --help\n`);
    return EXIT.USAGE;
  }
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: [...rest], options: { ...COMMON, ...cmd.options }, strict: true, allowPositionals: cmd.positionals !== undefined });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    if (parsed.values.help) { help(io, name); return EXIT.OK; }
    if (cmd.positionals) {
      const { min, max, names } = cmd.positionals;
      if (parsed.positionals.length < min) throw new UsageError(`missing ${names}`);
      if (parsed.positionals.length > max) throw new UsageError(`unexpected argument "${parsed.positionals[max]}" (takes ${names})`);
    }
    return await cmd.run(parsed.values as Record<string, unknown>, parsed.positionals, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`usage: ${err.message}\n${cmd.usage}\n`);
      return EXIT.USAGE;
    }
    const code = (err as { code?: string }).code ?? 'ERR_UNEXPECTED';
    io.stderr.write(`${code}: ${(err as Error).message}\n`);
    return exitFor(err);
  }
}

const CORRUPTION = new Set(['ERR_JOURNAL_CORRUPT', 'ERR_JOURNAL_TORN', 'ERR_STATE_HASH_MISMATCH']);

/**
 * The exit code of an error: 4 when it is (or was caused by) corruption of the journal, 3 when it is drift
 * (ERR_DRIFT, or the driver refusing to start because recovery found drift: ERR_THINPOOL_INIT carrying a
 * drift plan), 1 otherwise.
 */
function exitFor(err: unknown): number {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof ThinjournalError && CORRUPTION.has(e.code)) return EXIT.CORRUPT;
  }
  if (err instanceof ThinjournalError) {
    if (err.code === 'ERR_DRIFT') return EXIT.DRIFT;
    if (err.code === 'ERR_THINPOOL_INIT' && (err as { plan?: { verdict?: string } }).plan?.verdict === 'drift') return EXIT.DRIFT;
  }
  return EXIT.ERROR;
}
