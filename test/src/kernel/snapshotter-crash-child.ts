/**
 * The snapshotter daemon the crash test (snapshotter-crash.kernel.test.ts) SIGKILLs: `thinjournal snapshotter`
 * itself (the CLI's main, the command line the README documents), in a process that announces the calls it
 * serves, so that the parent can kill it inside one.
 *
 *   node snapshotter-crash-child.js '{"home":…,"socket":…,"opts":["dm.fs=ext4",…]}'
 *   node snapshotter-crash-child.js --discover      loads its modules and the addon, then exits (stage.ts)
 *
 * Protocol on stdout, one JSON object a line (stdout to a pipe is synchronous on Linux, so a line is out
 * before the call goes on):
 *   {"ev":"loaded"}                          modules loaded; waits for "go\n" on stdin (the parent pre-spawns
 *                                            the next daemon while the current one runs)
 *   {"ev":"serving"}                         the daemon's start (recovery included) is done; the socket serves
 *   {"ev":"begin","call":"prepare","n":K}    the service's K-th call of this process starts
 *   {"ev":"end","call":"prepare","n":K,"ok":true}   … has finished (ok false: it threw)
 *   {"ev":"exit","code":C}                   main returned (after SIGTERM)
 * The daemon's own log lines go to stderr.
 */
import { main, type Io } from '../../../packages/cli/dist/src/index.js';
import { loadNative } from '../../../packages/dm/dist/src/index.js';
import { SnapshotService, loadSnapshotsService } from '../../../packages/snapshotter/dist/src/index.js';

interface Args { home: string; socket: string; opts: string[] }

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

const CALLS = ['prepare', 'view', 'mounts', 'commit', 'remove', 'update', 'usage', 'cleanup'] as const;

/** Every mutating or kernel-touching call of the service announces its start and its end. */
function instrument(): void {
  let n = 0;
  const proto = SnapshotService.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of CALLS) {
    const orig = proto[name]!;
    proto[name] = function (this: unknown, ...a: unknown[]) {
      const k = n++;
      say({ ev: 'begin', call: name, n: k });
      const end = (ok: boolean) => say({ ev: 'end', call: name, n: k, ok });
      try {
        const r = orig.apply(this, a);
        if (r instanceof Promise) return r.then((v) => { end(true); return v; }, (e) => { end(false); throw e; });
        end(true);
        return r;
      } catch (e) {
        end(false);
        throw e;
      }
    };
  }
}

if (process.argv[2] === '--discover') {
  // For stage.ts: what a real run loads lazily too (the addon, by KernelBackend; gRPC's service definition).
  loadNative();
  loadSnapshotsService();
  process.exit(0);
}

const a = JSON.parse(process.argv[2]!) as Args;
say({ ev: 'loaded' });
await new Promise<void>((resolve) => {
  let buf = '';
  process.stdin.on('data', (d) => {
    buf += String(d);
    if (buf.includes('go\n')) { process.stdin.pause(); resolve(); }
  });
});
instrument();
const io: Io = {
  stdout: { write: (s: string) => process.stdout.write(s), isTTY: false },
  stderr: {
    write: (s: string) => {
      if (/thinjournal-snapshotter: serving /.test(s)) say({ ev: 'serving' });
      return process.stderr.write(s);
    },
    isTTY: false,
  },
  env: process.env,
};
const code = await main(['snapshotter', '--home', a.home, '--socket', a.socket, ...a.opts.flatMap((o) => ['--opt', o])], io);
say({ ev: 'exit', code });
process.exit(code);
