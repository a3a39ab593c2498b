// Crash safety: a child appends in a loop and is SIGKILLed at a random moment, 20 times over one journal.
// After each kill: reopen; every record the child reported acknowledged is present with its content; verify passes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Journal } from '../src/index.js';
import { tmpdir } from './helpers.js';

const child = fileURLToPath(new URL('./fixtures/crash-child.js', import.meta.url));
const KILLS = 20;

function runAndKill(dir: string, afterAcks: number, extraMs: number): Promise<{ acked: Map<number, string>; opened: boolean }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Map<number, string>();
    let opened = false;
    let buf = '';
    let err = '';
    let killing = false;
    p.stdout.on('data', (d: Buffer) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [what, seq, hash] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (what === 'open') opened = true;
        if (what === 'ack') acked.set(Number(seq), hash!);
        if (!killing && acked.size >= afterAcks) {
          killing = true;
          setTimeout(() => p.kill('SIGKILL'), extraMs);
        }
      }
    });
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited ${code}: ${err}`));
      else resolve({ acked, opened });
    });
  });
}

test(`SIGKILL at random moments (${KILLS}×): every acknowledged append survives, verify passes`, async () => {
  const { dir, cleanup } = tmpdir('crash');
  try {
    const everAcked = new Map<number, string>();
    for (let k = 0; k < KILLS; k++) {
      const { acked, opened } = await runAndKill(dir, 1 + Math.floor(Math.random() * 300), Math.floor(Math.random() * 15));
      assert.ok(opened, 'child opened the journal (the lock was released by the kill)');
      for (const [s, h] of acked) everAcked.set(s, h);
      const j = await Journal.open(dir);
      const records = await j.read();
      const bySeq = new Map(records.map((r) => [r.seq, r.body.hash as string]));
      for (const [s, hash] of everAcked) assert.is(bySeq.get(s), hash, `acknowledged seq ${s} present after kill ${k + 1}`);
      assert.equal(records.map((r) => r.seq), Array.from({ length: records.length }, (_, i) => i + 1), 'contiguous');
      const v = await j.verify();
      assert.ok(v.result.ok, `verify after kill ${k + 1}: ${JSON.stringify(v.result)}`);
      await j.close();
    }
    assert.ok(everAcked.size >= KILLS, `the children acknowledged ${everAcked.size} appends`);
  } finally { cleanup(); }
});

test.run();
