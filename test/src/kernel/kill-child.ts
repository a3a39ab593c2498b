/**
 * The process the kill test SIGKILLs (kill.kernel.test.ts): a daemon-like writer that runs random operations
 * through Engine on KernelBackend, back to back, until it is killed.
 *
 *   node kill-child.js '{"home":…,"mntRoot":…,"tag":"c7","seed":123}'
 *   node kill-child.js --discover      loads its modules and the addon, then exits (stage.ts)
 *
 * Protocol on stdout, one JSON object a line (stdout to a pipe is synchronous on Linux, so a line is out
 * before the next operation starts):
 *   {"ev":"loaded"}                      modules loaded; waits for "go\n" on stdin (the parent pre-spawns us)
 *   {"ev":"ready","steps":N,"verdict":V} journal opened; start-up recovery ran (the parent recovered already:
 *                                        N must be 0)
 *   {"ev":"begin","n":K,"cmd":{…}}       operation K is about to be executed
 *   {"ev":"ack","n":K}                   operation K was answered (acknowledged to its caller)
 *   {"ev":"refused","n":K,"code":C}      decide refused it (a coded error; nothing changed)
 *   {"ev":"error","n":K,…}               anything else: the parent fails the test
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Journal } from '../../../packages/journal/dist/src/index.js';
import { KernelBackend, loadNative } from '../../../packages/dm/dist/src/index.js';
import { Engine } from '../../../packages/reconciler/dist/src/index.js';
import type { Command, State } from '../../../packages/model/dist/src/index.js';

interface Args { home: string; mntRoot: string; tag: string; seed: number; maxDevices: number }

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

/** mulberry32: a small seeded PRNG, so a failing run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The next random operation the state admits (null: none). Bounded device count keeps metadata small. */
export function pickCommand(s: State, rnd: () => number, a: { mntRoot: string; newHash: () => string; maxDevices: number }): Command | null {
  const devs = [...s.devices.values()].filter((d) => !d.deletionDeferred);
  const pick = <T>(xs: readonly T[]): T | null => (xs.length ? xs[Math.floor(rnd() * xs.length)]! : null);
  const options: (() => Command | null)[] = [];
  if (devs.length < a.maxDevices) {
    options.push(() => {
      const parent = pick(devs.filter((d) => d.initialised));
      return parent ? { type: 'addDevice', hash: a.newHash(), baseHash: parent.hash } : null;
    });
    options.push(() => ({ type: 'createDevice', hash: a.newHash(), size: 32 * 2 ** 20 }));
  }
  options.push(() => {
    const d = pick(devs.filter((x) => x.hash !== '' && !x.active && !(s.childCounts.get(x.hash) ?? 0)));
    return d ? { type: 'deleteDevice', hash: d.hash, syncDelete: true } : null;
  });
  options.push(() => {
    const d = pick(devs.filter((x) => !x.active));
    return d ? { type: 'activateDevice', hash: d.hash } : null;
  });
  options.push(() => {
    const d = pick(devs.filter((x) => x.active && x.mounts.length === 0));
    return d ? { type: 'deactivateDevice', hash: d.hash } : null;
  });
  options.push(() => {
    const d = pick(devs.filter((x) => x.initialised && x.mounts.length === 0));
    return d ? { type: 'mountDevice', hash: d.hash, path: path.join(a.mntRoot, d.hash === '' ? 'base' : d.hash) } : null;
  });
  options.push(() => {
    const d = pick(devs.filter((x) => x.mounts.length > 0));
    return d ? { type: 'unmountDevice', hash: d.hash, path: d.mounts[0]!.path } : null;
  });
  for (let tries = 0; tries < 20; tries++) {
    const c = options[Math.floor(rnd() * options.length)]!();
    if (c) return c;
  }
  return null;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--discover') {
    // For stage.ts: load everything a real run loads (the addon is loaded lazily, by KernelBackend), then exit.
    loadNative();
    return;
  }
  const a = JSON.parse(process.argv[2]!) as Args;
  say({ ev: 'loaded' });
  await new Promise<void>((resolve) => {
    let buf = '';
    process.stdin.on('data', (d) => {
      buf += String(d);
      if (buf.includes('go\n')) resolve();
    });
  });
  const journal = await Journal.open(a.home, { actor: `kill-child-${a.tag}` });
  const engine = await Engine.open(journal, new KernelBackend());
  const r = await engine.recover();
  say({ ev: 'ready', steps: r.plan.steps.length, verdict: r.plan.verdict });
  const rnd = prng(a.seed);
  let k = 0;
  const newHash = () => `${a.tag}h${k}`;
  for (;; k++) {
    const cmd = pickCommand(engine.state, rnd, { mntRoot: a.mntRoot, newHash, maxDevices: a.maxDevices });
    if (!cmd) {
      say({ ev: 'idle' });
      await new Promise((res) => setTimeout(res, 50));
      continue;
    }
    if (cmd.type === 'mountDevice') mkdirSync(cmd.path, { recursive: true });
    say({ ev: 'begin', n: k, cmd });
    try {
      await engine.execute(cmd);
      say({ ev: 'ack', n: k });
    } catch (err) {
      const e = err as { code?: string; message?: string; errnoName?: string };
      if (typeof e.code === 'string' && e.code.startsWith('ERR_') && e.code !== 'ERR_KERNEL' && !e.code.startsWith('ERR_JOURNAL')) {
        say({ ev: 'refused', n: k, code: e.code });
        await new Promise((res) => setTimeout(res, 10)); // a refusal changes nothing: do not spin on it
      } else {
        say({ ev: 'error', n: k, code: e.code ?? null, errno: e.errnoName ?? null, message: String(e.message ?? err) });
        process.exit(1);
      }
    }
  }
}

// Run only as a program (the test imports prng from here).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    say({ ev: 'error', n: -1, message: String((err as Error)?.stack ?? err) });
    process.exit(1);
  });
}
