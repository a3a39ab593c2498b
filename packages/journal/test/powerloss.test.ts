// Two journals as a real power cut left them under dm-log-writes (kept in test/powerloss/), one operation
// apart. An operation's last record (TransactionCommitted, appended without a sync: recovery re-derives it
// from the kernel's transaction id) sits unsynced at the end of LevelDB's log N; the next open replays log N
// into a table, starts an empty log N+3 and a new manifest and renames CURRENT to it; the power goes before
// that rename is durable. CURRENT names the old manifest, whose live logs are N (ending in the zeros of the
// unsynced tail) and N+3 (empty). Nothing was written after the torn bytes: a torn tail, not corruption.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Journal } from '../src/index.js';

// dist/test → test/powerloss (the fixtures are not compiled)
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'powerloss');

for (const point of ['point-349', 'point-456']) {
  test(`a power cut during LevelDB's open after an unsynced last record (${point}): a torn tail, dropped by repairTornTail`, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tj-powerloss-'));
    try {
      cpSync(path.join(fixtures, point), dir, { recursive: true });
      const refused = await Journal.open(dir, { actor: 'powerloss-test' }).then(
        async (j) => { await j.close(); return null; },
        (e: unknown) => e as { code?: string; message?: string },
      );
      assert.ok(refused !== null, 'a writer refuses a torn tail without the operator\'s word');
      assert.is(refused.code, 'ERR_JOURNAL_TORN', refused.message);
      assert.match(refused.message ?? '', /\.log/);
      const j = await Journal.open(dir, { actor: 'powerloss-test', repairTornTail: true });
      const seq = j.head().seq;
      try {
        assert.ok(j.repaired !== null, 'the drop is reported');
        assert.ok(j.repaired!.file?.endsWith('.log'), JSON.stringify(j.repaired));
        assert.ok(seq > 0, 'the synced records survive');
      } finally {
        await j.close();
      }
      const r = await Journal.openReader(dir);
      try {
        const v = await r.verify();
        assert.ok(v.result.ok, JSON.stringify(v.result));
        assert.is(v.result.records, seq);
      } finally {
        await r.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
