/**
 * Recovery and lineage commands: recover, replay, lineage, ls. They read the journal's state (checkpoint +
 * tail); recover and replay also read and change the kernel through a Backend.
 */
import { ThinjournalError, chainError } from '@thinjournal/spec';
import { Journal } from '@thinjournal/journal';
import { checkDmName, type State } from '@thinjournal/model';
import { requireKernelBackend, type Backend } from '@thinjournal/dm';
import { layoutOf, preparePoolDevices } from '@thinjournal/driver';
import { Engine, describeStep, loadState, planReplay, applyReplay, type RecoveryPlan } from '@thinjournal/reconciler';
import { EXIT, UsageError, absoluteHome, journalDir, openForReading, progress, printTable, type Command, type Io } from './common.js';

/** The kernel's backend, once probeDeviceMapper says the device-mapper answers (tests inject a ModelBackend). */
export function backendFor(io: Io): Backend {
  if (io.backend) return io.backend;
  return requireKernelBackend('the device commands, recover and replay need the kernel; --dry-run of replay does not');
}

/**
 * Refuses a reader's journal whose chain from the latest checkpoint to the head does not verify (O(tail)):
 * recovery and the state-derived views act on the state only a verified chain describes.
 */
export async function requireVerifiedTail(j: Journal): Promise<void> {
  const r = await j.checkTail();
  if (!r.ok) throw chainError(r);
}

async function stateOf(io: Io, v: Record<string, unknown>): Promise<State> {
  const j = await openForReading(journalDir(v, io));
  try {
    await requireVerifiedTail(j);
    const bar = progress(io, 'replaying');
    const s = await loadState(j, { onProgress: (n) => bar.update(n, j.head().seq) });
    bar.done();
    return s;
  } finally {
    await j.close();
  }
}

/**
 * A plan for an operator. `repairing`: the repair is about to be applied (--repair); otherwise a drift's
 * repair is offered, nothing having been changed.
 */
export function printPlan(io: Io, plan: RecoveryPlan, opts: { repairing?: boolean } = {}): void {
  io.stdout.write(`verdict: ${plan.verdict} — ${plan.reason}\n`);
  plan.steps.forEach((s, i) => io.stdout.write(`  ${String(i + 1).padStart(3)}. ${describeStep(s)}\n`));
  if (plan.drift) {
    const d = plan.drift;
    io.stdout.write(`drift: journal committed tx ${d.journalTxId}${d.pendingTxId !== null ? ` (intends ${d.pendingTxId})` : ''}, kernel tx ${d.kernelTxId ?? 'unreadable'}\n`);
    if (d.kernelOnly.length) io.stdout.write(`  thin ids only in the kernel: ${d.kernelOnly.join(', ')}\n`);
    if (d.journalOnly.length) io.stdout.write(`  devices only in the journal: ${d.journalOnly.map((x) => `${JSON.stringify(x.hash)} (id ${x.deviceId})`).join(', ')}\n`);
    for (const line of d.findings) io.stdout.write(`  ${line}\n`);
    for (const line of d.refusals) io.stdout.write(`  refused: ${line}\n`);
    const repair = plan.repair ?? [];
    if (d.refusals.length) io.stdout.write('no repair is offered: the journal cannot vouch for these devices; nothing was changed\n');
    else if (repair.length === 0) io.stdout.write('no repair is offered (nothing the journal could bring back); nothing was changed\n');
    else {
      io.stdout.write(opts.repairing ? 'repair (confirmed by --repair; journaled):\n' : 'repair plan (nothing was changed; run `thinjournal recover --repair` to apply it):\n');
      repair.forEach((s, i) => io.stdout.write(`  ${String(i + 1).padStart(3)}. ${describeStep(s)}\n`));
    }
  }
}

/** `--to N` is a seq (from 1); `--to tx:N` a pool transaction id. */
function parseTo(text: string | undefined): { toSeq?: number; toTxId?: number } {
  if (text === undefined) return {};
  const m = /^(tx:)?(\d+)$/.exec(text);
  if (!m || !Number.isSafeInteger(Number(m[2]))) throw new UsageError(`--to "${text}" is neither a seq (N) nor a transaction id (tx:N)`);
  if (!m[1] && Number(m[2]) === 0) throw new UsageError('--to 0: seqs start at 1 (--to tx:0 stops at the pool before its first transaction)');
  return m[1] ? { toTxId: Number(m[2]) } : { toSeq: Number(m[2]) };
}

/**
 * replay's target devices: absolute paths (block devices), different from each other; the pool name a
 * device-mapper name (1…127 bytes, no "/", not "." or "..").
 */
function checkReplayTarget(v: Record<string, unknown>): void {
  const metadata = v['metadata-device'] as string | undefined;
  const data = v['data-device'] as string | undefined;
  for (const [flag, dev] of [['--metadata-device', metadata], ['--data-device', data]] as const) {
    if (dev !== undefined && !dev.startsWith('/')) throw new UsageError(`${flag} "${dev}" is not an absolute path (a block device, e.g. /dev/sdc1)`);
  }
  if (metadata !== undefined && metadata === data) throw new UsageError(`--metadata-device and --data-device are both "${metadata}": the pool needs two devices`);
  const name = v['pool-name'] as string | undefined;
  if (name !== undefined) {
    try {
      checkDmName(name, '--pool-name');
    } catch (err) {
      throw new UsageError(`${(err as Error).message} (a device-mapper name: 1…127 bytes, no "/", not "." or "..")`);
    }
  }
}

export const RECOVERY_COMMANDS: Record<string, Command> = {
  recover: {
    summary: 'bring the kernel\'s pool and the journal to one state after a crash (exit 3 on drift, changing nothing)',
    usage: 'thinjournal recover [--home DIR] [--dry-run] [--repair] [--repair-torn-tail] [--json]',
    example: 'thinjournal recover --home /var/lib/thinjournal --dry-run',
    options: { 'dry-run': { type: 'boolean' }, repair: { type: 'boolean' }, 'repair-torn-tail': { type: 'boolean' } },
    async run(v, _p, io) {
      const dryRun = v['dry-run'] === true;
      if (dryRun && v['repair-torn-tail'] === true) throw new UsageError('--dry-run and --repair-torn-tail contradict each other: --dry-run changes nothing');
      const backend = backendFor(io);
      // A dry run is a reader (a private copy: not a byte of the journal changes, its lock is not taken); a
      // recovery is the journal's writer and never creates one (only init does).
      const j = dryRun
        ? await openForReading(journalDir(v, io))
        : await Journal.open(journalDir(v, io), { actor: 'thinjournal-cli', createIfMissing: false, repairTornTail: v['repair-torn-tail'] === true });
      try {
        if (dryRun) await requireVerifiedTail(j);
        if (j.repaired) io.stderr.write(`torn tail dropped (operator's --repair-torn-tail): ${j.repaired.droppedBytes} bytes${j.repaired.file ? ` of ${j.repaired.file}` : ''}; the journal now ends at seq ${j.repaired.fromSeq - 1}\n`);
        const actor = 'thinjournal-cli';
        const engine = await Engine.open(j, backend, { actor });
        if (!engine.state.pool) throw new ThinjournalError('ERR_POOL_NOT_INITIALISED', 'the journal has no pool: nothing to recover');
        // What the driver's start does first: the pool's loop files on their loops (attached after a reboot).
        const devices = await preparePoolDevices(engine, backend, layoutOf(absoluteHome(v, io)), { dryRun, actor });
        if (v.json !== true) for (const note of devices.notes) io.stdout.write(`${dryRun ? 'would ' : ''}${note}\n`);
        const r = await engine.recover({ dryRun, actor, ...devices.view });
        const repairing = r.plan.verdict === 'drift' && v.repair === true && !dryRun && (r.plan.repair ?? []).length > 0;
        if (v.json !== true) printPlan(io, r.plan, { repairing });
        let repaired = null;
        let after = null;
        if (repairing) {
          repaired = await engine.applyRepair(r.plan, { actor, reason: 'operator-confirmed repair (recover --repair)' });
          if (v.json !== true) io.stdout.write(`repair applied: ${repaired.completed} steps (${repaired.skipped} already done)\n`);
          // A repair brings the kernel back to what the journal can explain; recovery then does the rest.
          after = await engine.recover({ actor });
          if (v.json !== true) {
            printPlan(io, after.plan);
            if (after.plan.verdict !== 'drift') io.stdout.write(`applied: ${after.completed} steps (${after.skipped} already done)\n`);
          }
        }
        if (v.json === true) io.stdout.write(JSON.stringify({ ...r, dryRun, devices: devices.notes, repaired, after }) + '\n');
        else if (dryRun) io.stdout.write('dry run: nothing was changed\n');
        else if (r.plan.verdict !== 'drift') io.stdout.write(`applied: ${r.completed} steps (${r.skipped} already done)\n`);
        return (after ?? r).plan.verdict === 'drift' ? EXIT.DRIFT : EXIT.OK;
      } finally {
        await j.close();
      }
    },
  },
  replay: {
    summary: 'rebuild the pool from the journal on an empty metadata device (same ids, lineage, transaction id; data is not in the journal)',
    usage: 'thinjournal replay [--home DIR] [--to SEQ|tx:TXID] [--metadata-device DEV] [--data-device DEV] [--pool-name NAME] [--dry-run] [--json]',
    example: 'thinjournal replay --to tx:42 --metadata-device /dev/sdc1 --data-device /dev/sdc2 --pool-name restored --dry-run',
    options: { to: { type: 'string' }, 'metadata-device': { type: 'string' }, 'data-device': { type: 'string' }, 'pool-name': { type: 'string' }, 'dry-run': { type: 'boolean' } },
    async run(v, _p, io) {
      const to = parseTo(v.to as string | undefined);
      checkReplayTarget(v);
      const j = await openForReading(journalDir(v, io));
      let plan;
      try {
        // The pool is rebuilt from the whole history: the whole chain must verify first.
        const chain = (await j.verify()).result;
        if (!chain.ok) throw chainError(chain);
        plan = planReplay(await j.read(to.toSeq !== undefined ? { toSeq: to.toSeq } : {}), {
          ...to,
          ...(v['metadata-device'] ? { metadataDevice: v['metadata-device'] as string } : {}),
          ...(v['data-device'] ? { dataDevice: v['data-device'] as string } : {}),
          ...(v['pool-name'] ? { poolName: v['pool-name'] as string } : {}),
        });
      } finally {
        await j.close();
      }
      const note = 'data is not in the journal: thin devices are rebuilt empty (ids, lineage and transaction id only)';
      if (v['dry-run'] === true) {
        if (v.json === true) io.stdout.write(JSON.stringify({ dryRun: true, steps: plan.steps, lastSeq: plan.lastSeq, transactionId: plan.transactionId, stateHash: plan.stateHash, skippedTransactions: plan.skippedTransactions, note }) + '\n');
        else {
          plan.steps.forEach((s, i) => io.stdout.write(`  ${String(i + 1).padStart(4)}. ${describeStep(s)}\n`));
          io.stdout.write(`up to seq ${plan.lastSeq}, transaction ${plan.transactionId}; state hash ${plan.stateHash}\n${note}\ndry run: nothing was changed\n`);
        }
        return EXIT.OK;
      }
      const bar = progress(io, 'replaying');
      const r = await applyReplay(plan, backendFor(io), { onStep: (i, n) => bar.update(i, n) });
      bar.done();
      if (v.json === true) io.stdout.write(JSON.stringify({ ...r, lastSeq: plan.lastSeq, stateHash: plan.stateHash, note }) + '\n');
      else io.stdout.write(`rebuilt: transaction ${r.transactionId}, ${r.ids.length} thin devices — ${r.matches ? 'matches' : 'DOES NOT MATCH'} the journal at seq ${plan.lastSeq}; state hash ${plan.stateHash}\n${note}\n`);
      return r.matches ? EXIT.OK : EXIT.DRIFT;
    },
  },
  lineage: {
    summary: 'the snapshot tree from the journal (text, or --format dot|mermaid)',
    usage: 'thinjournal lineage [--home DIR] [--format text|dot|mermaid] [--json]',
    example: 'thinjournal lineage --format dot | dot -Tsvg > lineage.svg',
    options: { format: { type: 'string' } },
    async run(v, _p, io) {
      const format = (v.format as string | undefined) ?? 'text';
      if (!['text', 'dot', 'mermaid'].includes(format)) throw new UsageError(`--format "${format}" is not one of text, dot, mermaid`);
      const s = await stateOf(io, v);
      io.stdout.write(v.json === true ? JSON.stringify(lineageJson(s)) + '\n' : renderLineage(s, format as 'text' | 'dot' | 'mermaid'));
      return EXIT.OK;
    },
  },
  ls: {
    summary: 'devices as the journal knows them (id, size, parent, active, mounts)',
    usage: 'thinjournal ls [--home DIR] [--json]',
    example: 'thinjournal ls --json | jq -r ".[] | select(.mounts | length > 0) | .hash"',
    options: {},
    async run(v, _p, io) {
      const s = await stateOf(io, v);
      const devs = [...s.devices.values()].sort((a, b) => a.deviceId - b.deviceId);
      // A home served by the snapshotter: each device's containerd snapshot (key or name, kind) too.
      const snaps = snapshotsByHash(s);
      if (v.json === true || !io.stdout.isTTY) {
        io.stdout.write(JSON.stringify(devs.map((d) => {
          const x = snaps.get(d.hash);
          return { hash: d.hash, deviceId: d.deviceId, size: d.size, parent: d.parentHash, txId: d.txId, active: d.active, dmName: d.dmName, mounts: d.mounts.map((m) => m.path), deletionDeferred: d.deletionDeferred, ...(x ? { snapshot: { key: x.key, kind: x.kind, parent: x.parent } } : {}) };
        })) + '\n');
      } else {
        const extra = (d: { hash: string }): string[] => (snaps.size ? [snaps.has(d.hash) ? `${snaps.get(d.hash)!.key} (${snaps.get(d.hash)!.kind})` : ''] : []);
        printTable(io.stdout, devs.map((d) => [d.hash === '' ? '(base)' : d.hash, String(d.deviceId), String(d.size), d.parentHash === null ? '' : d.parentHash === '' ? '(base)' : d.parentHash, d.active ? (d.removalDeferred ? 'removing' : 'active') : '', d.mounts.map((m) => m.path).join(','), d.deletionDeferred ? 'deferred-delete' : '', ...extra(d)]), ['hash', 'id', 'size', 'parent', 'state', 'mounts', 'flags', ...(snaps.size ? ['snapshot'] : [])]);
      }
      return EXIT.OK;
    },
  },
};

/** The snapshot namespace by device hash (empty for homes the snapshotter never served). */
function snapshotsByHash(s: State): Map<string, { key: string; kind: string; parent: string | null }> {
  return new Map([...s.snapshots.values()].map((x) => [x.hash, x]));
}

function childrenMap(s: State): Map<string | null, string[]> {
  const kids = new Map<string | null, string[]>();
  for (const d of [...s.devices.values()].sort((a, b) => a.deviceId - b.deviceId)) {
    const list = kids.get(d.parentHash) ?? [];
    list.push(d.hash);
    kids.set(d.parentHash, list);
  }
  return kids;
}

const label = (h: string) => (h === '' ? '(base)' : h);

function lineageJson(s: State): unknown {
  const kids = childrenMap(s);
  const snaps = snapshotsByHash(s);
  const node = (h: string): unknown => {
    const x = snaps.get(h);
    return { hash: h, deviceId: s.devices.get(h)!.deviceId, ...(x ? { snapshot: { key: x.key, kind: x.kind } } : {}), children: (kids.get(h) ?? []).map(node) };
  };
  return (kids.get(null) ?? []).map(node);
}

export function renderLineage(s: State, format: 'text' | 'dot' | 'mermaid'): string {
  const kids = childrenMap(s);
  const roots = kids.get(null) ?? [];
  if (format === 'dot') {
    const lines = ['digraph lineage {', '  rankdir=LR;'];
    for (const d of [...s.devices.values()].sort((a, b) => a.deviceId - b.deviceId)) {
      lines.push(`  "${d.deviceId}" [label=${JSON.stringify(`${label(d.hash)} #${d.deviceId}`)}];`);
      if (d.parentHash !== null) lines.push(`  "${s.devices.get(d.parentHash)!.deviceId}" -> "${d.deviceId}";`);
    }
    return lines.join('\n') + '\n}\n';
  }
  if (format === 'mermaid') {
    const lines = ['graph LR'];
    for (const d of [...s.devices.values()].sort((a, b) => a.deviceId - b.deviceId)) {
      lines.push(`  d${d.deviceId}[${JSON.stringify(`${label(d.hash)} #${d.deviceId}`)}]`);
      if (d.parentHash !== null) lines.push(`  d${s.devices.get(d.parentHash)!.deviceId} --> d${d.deviceId}`);
    }
    return lines.join('\n') + '\n';
  }
  const out: string[] = [];
  const snaps = snapshotsByHash(s);
  const walk = (h: string, prefix: string, last: boolean, root: boolean) => {
    const d = s.devices.get(h)!;
    const flags = [d.active ? 'active' : '', ...d.mounts.map((m) => `mounted ${m.path}`), d.deletionDeferred ? 'deletion deferred' : ''].filter(Boolean);
    const x = snaps.get(h);
    out.push(`${prefix}${root ? '' : last ? '└── ' : '├── '}${label(h)} #${d.deviceId}${x ? ` ${JSON.stringify(x.key)} (${x.kind})` : ''}${flags.length ? ` [${flags.join(', ')}]` : ''}`);
    const ks = kids.get(h) ?? [];
    ks.forEach((k, i) => walk(k, root ? '' : prefix + (last ? '    ' : '│   '), i === ks.length - 1, false));
  };
  roots.forEach((r) => walk(r, '', true, true));
  return out.join('\n') + (out.length ? '\n' : '');
}
