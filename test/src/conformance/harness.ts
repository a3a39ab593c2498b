/**
 * What a conformance case needs besides the Backend: files, directories, open handles and a crash image,
 * provided per backend (ModelBackend: in memory; KernelBackend: real files, tmpfs, /dev nodes).
 */
import type { Backend } from '../../../packages/dm/dist/src/index.js';

export interface Harness {
  readonly backend: Backend;
  /** A dm device name unique to this case. */
  name(suffix: string): string;
  /** A zero-filled (sparse) file; `readOnlyFs`: on a filesystem mounted read-only. */
  makeFile(bytes: number, opts?: { readOnlyFs?: boolean }): Promise<string>;
  /** Grows a file made by makeFile to `bytes` (truncate). */
  growFile(file: string, bytes: number): Promise<void>;
  makeDir(): Promise<string>;
  /** A path that does not exist. */
  missingPath(): string;
  /** Opens a block device like another process would; resolves to the close function. */
  hold(devicePath: string): Promise<() => Promise<void>>;
  /**
   * A copy of `file` as it is on "disk" right now — what a power cut at this instant would leave.
   * (KernelBackend: a copy of the loop's backing file: it holds only what dm-thin has written, i.e.
   * committed; metadata still in the kernel's buffers is not in it.)
   */
  crashImage(file: string): Promise<string>;
  /** Removes every device, loop and mount this case made. */
  cleanup(): Promise<void>;
}

export type HarnessFactory = (caseName: string) => Promise<Harness>;
