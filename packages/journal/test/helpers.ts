import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { JournalEvent } from '@thinjournal/spec';

export function tmpdir(tag: string): { dir: string; cleanup: () => void } {
  const base = mkdtempSync(path.join(os.tmpdir(), `thinjournal-${tag}-`));
  return { dir: path.join(base, 'journal'), cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

export function created(i: number, txId = i + 1): JournalEvent {
  return { type: 'DeviceCreated', txId, body: { hash: `dev-${i}`, deviceId: i + 1, size: 1 << 30 } };
}

/** Opens the raw LevelDB under a (closed) journal, for tampering. */
export async function raw(dir: string): Promise<ClassicLevel<string, Uint8Array>> {
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  return db;
}

export async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<Error & { code: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if ((err as { code?: string }).code !== code) throw new Error(`expected ${code}, got ${(err as { code?: string }).code}: ${(err as Error).message}`);
    return err as Error & { code: string };
  }
  throw new Error(`expected ${code}, but it succeeded`);
}
