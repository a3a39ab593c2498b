/**
 * containerd.services.snapshots.v1.Snapshots over gRPC (@grpc/grpc-js, the .proto files in ../proto loaded at
 * run time by @grpc/proto-loader). Each handler converts the request, calls SnapshotService, and maps a
 * coded error to its status (status.ts). Requests that are not even well-formed messages never reach a
 * handler (grpc-js refuses them); fields of the wrong shape inside one are ERR_SNAPSHOT_INVALID.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ThinjournalError } from '@thinjournal/spec';
import type { Mount, SnapshotInfo, SnapshotService } from './service.js';
import { toServiceError } from './status.js';

/** The package's proto directory (next to dist/ and src/). */
export const PROTO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
export const SNAPSHOTS_PROTO = 'github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto';

/** The loader options: field names as in the .proto, int64 as Number (sizes and seconds fit 2^53), enums as names. */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] };

export function loadSnapshotsService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(SNAPSHOTS_PROTO, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } } };
  return pkg.containerd.services.snapshots.v1.Snapshots;
}

const KIND_OUT = { active: 'ACTIVE', view: 'VIEW', committed: 'COMMITTED' } as const;
/** List sends the snapshots in batches of this many per message. */
const LIST_BATCH = 100;

interface Timestamp { seconds: number; nanos: number }

function timestamp(us: number): Timestamp {
  return { seconds: Math.floor(us / 1e6), nanos: (us % 1e6) * 1000 };
}

function infoOut(i: SnapshotInfo): Record<string, unknown> {
  return { name: i.name, parent: i.parent, kind: KIND_OUT[i.kind], created_at: timestamp(i.created), updated_at: timestamp(i.updated), labels: { ...i.labels } };
}

function mountsOut(ms: readonly Mount[]): Record<string, unknown>[] {
  return ms.map((m) => ({ type: m.type, source: m.source, target: '', options: [...m.options] }));
}

function str(v: unknown, what: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new ThinjournalError('ERR_SNAPSHOT_INVALID', `${what} must be a string`);
  return v;
}

function labelsIn(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ThinjournalError('ERR_SNAPSHOT_INVALID', 'labels must be a map of strings');
  return v as Record<string, string>;
}

type Req = Record<string, unknown>;
type Unary = (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => void;

export interface ServerHandle {
  readonly server: grpc.Server;
  readonly socket: string;
  /** Calls in flight right now. */
  inFlight(): number;
  /** Stops taking calls, waits for those in flight, then for the service's queue to drain. */
  drain(): Promise<void>;
}

/**
 * Serves `svc` on the unix socket `socket` (0600; its directory is created 0700 if missing). An existing
 * socket file is removed first — the caller holds the journal's lock, so no other daemon of this home serves
 * it; anything at the path that is not a socket is refused (ERR_BAD_PATH) and left alone.
 */
export async function serve(svc: SnapshotService, socket: string): Promise<ServerHandle> {
  if (!path.isAbsolute(socket) || socket.includes('\0')) throw new ThinjournalError('ERR_BAD_PATH', `socket ${JSON.stringify(socket)} is not an absolute path`);
  mkdirSync(path.dirname(socket), { recursive: true, mode: 0o700 });
  let st: import('node:fs').Stats | null = null;
  try { st = lstatSync(socket); } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; }
  if (st) {
    if (!st.isSocket()) throw new ThinjournalError('ERR_BAD_PATH', `${socket} exists and is not a socket; not removed`);
    unlinkSync(socket);
  }
  let flying = 0;
  const track = (fn: Unary): Unary => (call, cb) => {
    flying++;
    const done: grpc.sendUnaryData<unknown> = (err, value) => { flying--; cb(err, value); };
    try {
      fn(call, done);
    } catch (err) {
      done(toServiceError(err) as grpc.ServiceError, null);
    }
  };
  const unary = (fn: (r: Req) => unknown): Unary => track((call, cb) => {
    Promise.resolve().then(() => fn(call.request)).then((v) => cb(null, v), (err) => cb(toServiceError(err) as grpc.ServiceError, null));
  });

  const handlers: grpc.UntypedServiceImplementation = {
    Prepare: unary(async (r) => ({ mounts: mountsOut(await svc.prepare(str(r.key, 'key'), str(r.parent, 'parent'), labelsIn(r.labels))) })),
    View: unary(async (r) => ({ mounts: mountsOut(await svc.view(str(r.key, 'key'), str(r.parent, 'parent'), labelsIn(r.labels))) })),
    Mounts: unary(async (r) => ({ mounts: mountsOut(await svc.mounts(str(r.key, 'key'))) })),
    Commit: unary(async (r) => { await svc.commit(str(r.name, 'name'), str(r.key, 'key'), labelsIn(r.labels)); return {}; }),
    Remove: unary(async (r) => { await svc.remove(str(r.key, 'key')); return {}; }),
    Stat: unary((r) => ({ info: infoOut(svc.stat(str(r.key, 'key'))) })),
    Update: unary(async (r) => {
      const info = (r.info ?? {}) as Req;
      const mask = (r.update_mask ?? null) as { paths?: unknown } | null;
      const paths = Array.isArray(mask?.paths) ? mask!.paths.map((p) => str(p, 'update_mask path')) : [];
      return { info: infoOut(await svc.update(str(info.name, 'info.name'), labelsIn(info.labels), paths)) };
    }),
    List: (call: grpc.ServerWritableStream<Req, unknown>) => {
      flying++;
      try {
        const filters = Array.isArray(call.request.filters) ? call.request.filters.map((f) => str(f, 'filter')) : [];
        const all = svc.list(filters);
        for (let i = 0; i < all.length; i += LIST_BATCH) call.write({ info: all.slice(i, i + LIST_BATCH).map(infoOut) });
        call.end();
      } catch (err) {
        call.emit('error', toServiceError(err));
      } finally {
        flying--;
      }
    },
    Usage: unary(async (r) => svc.usage(str(r.key, 'key'))),
    Cleanup: unary(async () => { await svc.cleanup(); return {}; }),
  };

  const server = new grpc.Server();
  server.addService(loadSnapshotsService().service, handlers);
  // The socket is created 0600 (umask) and chmod-ed again after bind: never reachable by others, even briefly.
  const umask = process.umask(0o177);
  try {
    await new Promise<number>((resolve, reject) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  } finally {
    process.umask(umask);
  }
  chmodSync(socket, 0o600);
  return {
    server, socket,
    inFlight: () => flying,
    async drain() {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await svc.idle();
      try { unlinkSync(socket); } catch { /* already gone */ }
    },
  };
}
