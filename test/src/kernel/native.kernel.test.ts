// The native layer itself on a real kernel: the error object, target versions, loop autoclear, discard and
// flush, and that a long call does not block the event loop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KernelHarness, kernelUnavailable } from './kernel-harness.js';

const why = await kernelUnavailable();
if (why) {
  console.log(`native kernel tests skipped: ${why}`);
  test.skip('native layer', () => {});
} else {
  test('native errors carry code, errno, syscall and the dm device name', async () => {
    const h = await KernelHarness.create();
    try {
      const n = h.backend.native;
      const err = await n.dmMessage(h.name('nope'), 0, 'create_thin 0').then(() => null, (e: unknown) => e as Record<string, unknown>);
      assert.ok(err instanceof Error);
      assert.is(err.code, 'ENXIO');
      assert.is(err.errno, 6);
      assert.is(err.syscall, 'DM_TARGET_MSG');
      assert.is(err.device, h.name('nope'));
      const long = await n.dmInfo('x'.repeat(128)).then(() => null, (e: unknown) => e as Record<string, unknown>);
      assert.is(long?.code, 'ENAMETOOLONG', 'refused before the ioctl');
      const targets = (await n.dmListTargets()).map((t) => t.name);
      assert.ok(targets.includes('thin-pool') && targets.includes('thin'), targets.join(','));
    } finally {
      await h.cleanup();
    }
  });

  test('loop autoclear detaches at the last close; discard, zero-out and flush work on a loop device', async () => {
    const h = await KernelHarness.create();
    try {
      const n = h.backend.native;
      const file = await h.makeFile(4 << 20);
      const { device } = await n.loopAttach(file, { autoclear: true });
      const gone = await n.loopBackingFile(device).then(() => 'bound', (e: { code: string }) => e.code);
      assert.is(gone, 'ENXIO', 'nothing held it, so our own close detached it');
      const dev = await h.backend.attachLoop(file);
      await n.blkDiscard(dev, 0, 1 << 20);
      await n.blkZeroOut(dev, 1 << 20, 1 << 20);
      await n.blkFlush(dev);
      assert.is(await n.blkSize(dev), 4 << 20);
      await n.loopSetCapacity(dev);
      await h.backend.detachLoop(dev);
    } finally {
      await h.cleanup();
    }
  });

  test('calls run off the event loop: timers keep firing during 200 ioctls', async () => {
    const h = await KernelHarness.create();
    try {
      const n = h.backend.native;
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: 200 }, () => n.dmVersion()));
      const elapsed = performance.now() - t0;
      clearInterval(timer);
      assert.ok(ticks > 0 || elapsed < 5, `ticks=${ticks} over ${elapsed.toFixed(1)} ms`);
    } finally {
      await h.cleanup();
    }
  });
}
test.run();
