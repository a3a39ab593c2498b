import { ModelBackend } from '../../../packages/dm/dist/src/index.js';
import type { Harness } from './harness.js';

export class ModelHarness implements Harness {
  readonly backend = new ModelBackend();
  private n = 0;
  constructor(private readonly prefix: string) {}
  name(suffix: string): string {
    return `${this.prefix}-${suffix}`;
  }
  async makeFile(bytes: number, opts: { readOnlyFs?: boolean } = {}): Promise<string> {
    const p = `/model/files/f${this.n++}`;
    this.backend.addFile(p, bytes, opts);
    return p;
  }
  async growFile(file: string, bytes: number): Promise<void> {
    this.backend.growFile(file, bytes);
  }
  async makeDir(): Promise<string> {
    const p = `/model/dirs/d${this.n++}`;
    this.backend.mkdir(p);
    return p;
  }
  missingPath(): string {
    return `/model/missing/m${this.n++}`;
  }
  async hold(devicePath: string): Promise<() => Promise<void>> {
    const release = this.backend.hold(devicePath);
    return async () => release();
  }
  async crashImage(file: string): Promise<string> {
    const p = `/model/files/f${this.n++}`;
    this.backend.copyFile(file, p);
    return p;
  }
  async cleanup(): Promise<void> {}
}

export async function modelHarness(caseName: string): Promise<Harness> {
  return new ModelHarness(`tjc-${caseName.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`);
}
