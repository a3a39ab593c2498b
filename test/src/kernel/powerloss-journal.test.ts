// A journal as a real power cut left it (found by powerloss.kernel.test.ts, kept in test/fixtures/powerloss),
// opened off the kernel. Both fixtures are the same window, one operation apart: an operation's last record
// (TransactionCommitted, appended without a sync by design: recovery re-derives it from the kernel's
// transaction id) sits unsynced at the end of LevelDB's log N; the next command opens the journal, and
// LevelDB's open replays log N into a table, creates an empty log N+3 and a new manifest, and renames CURRENT
// to it; the power goes before that rename is durable. So CURRENT still names the old manifest, whose live
// logs are N and N+3, log N ends in the zeroes of its unsynced tail (254 and 223 bytes), and log N+3 is
// empty. Nothing follows the torn bytes: it is a torn tail of the journal, and LevelDB itself opens it. The
// journal's pre-open check calls it corruption instead ("torn writes are only possible in the newest live
// log, and this log is older than …"): ERR_JOURNAL_CORRUPT, even with repairTornTail, so `recover` exits 4
// and no thinjournal command can bring the home back.
//
// Expected (this test): the journal opens with repairTornTail, dropping the torn tail, and verifies. It
// fails today; it runs with THINJOURNAL_KNOWN_BUGS=1 and is skipped otherwise, with that reason.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Journal } from '../../../packages/journal/dist/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '..', '..', 'fixtures', 'powerloss'); // test/dist/kernel → test/fixtures
const run = process.env.THINJOURNAL_KNOWN_BUGS === '1';

for (const point of ['point-349', 'point-456']) {
  const name = `a power cut during LevelDB's open after an unsynced commit record (${point}): a torn tail, opened with repairTornTail`;
  if (!run) {
    console.log(`skipped (known bug, THINJOURNAL_KNOWN_BUGS=1 runs it): the journal refuses a torn unsynced tail in log N as corruption when the power cut left LevelDB's empty log N+3 beside it (${point})`);
    test.skip(name, () => {});
    continue;
  }
  test(name, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tjplj-'));
    try {
      cpSync(path.join(fixtures, point), dir, { recursive: true });
      const j = await Journal.open(dir, { actor: 'powerloss-test', repairTornTail: true });
      try {
        const v = await j.verify();
        assert.ok(v.result.ok, JSON.stringify(v.result));
      } finally {
        await j.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
