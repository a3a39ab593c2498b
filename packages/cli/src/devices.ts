/**
 * Device commands: init, create, snapshot, rm, mount, umount, status, shutdown — Docker's devmapper graph
 * driver operations (packages/driver) from the command line.
 *
 * Each call is a short-lived process: it opens the driver on <home> (journal exclusively, recovery, base
 * image check), does one thing, and closes with `Driver.close()`, which closes the journal and leaves the
 * kernel as it is — what is mounted stays mounted for the next call. Only `shutdown` calls `cleanup()`
 * (Docker's Shutdown: unmount, deactivate, remove the pool, detach the loop devices).
 *
 * Options: `--opt dm.key=value` is taken by `init` only. The pool records the options in force when it was
 * set up (PoolInitialised.options, in effectiveOptions' form); every later call re-derives its option list
 * from the journal (optionsFromRecorded), so nobody has to repeat them. Since the journal records options only
 * at set-up, a later `init --opt` may change only what has an event of its own (checkOptionChanges).
 */
import { accessSync, constants as fsConstants, existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { ThinjournalError, isCode } from '@thinjournal/spec';
import { Journal } from '@thinjournal/journal';
import { BASE_HASH, OPTION_NAMES, checkHash, effectiveOptions, parseOptions, parseSize, recordedTexts, type State } from '@thinjournal/model';
import { loadState } from '@thinjournal/reconciler';
import type { Backend } from '@thinjournal/dm';
import { init, statusPairs, type Driver, type Status } from '@thinjournal/driver';
import { backendFor, requireVerifiedTail } from './recovery.js';
import { EXIT, UsageError, absoluteHome, type Command, type Io } from './common.js';

const ACTOR = 'thinjournal-cli';

/** Options whose values are JSON arrays of texts in the journal (each text is one `key=value`). */
const REPEATABLE = new Set(['dm.mkfsarg', 'dm.mountopt']);

/** Options that say where the pool lives; giving any of them to `init` replaces all the recorded ones. */
const LOCATION = new Set(['dm.thinpooldev', 'dm.datadev', 'dm.metadatadev', 'dm.directlvm_device', 'dm.loopdatasize', 'dm.loopmetadatasize']);

/** The key of a `dm.key=value` text as parseOptions reads it (trimmed, lower case). */
export function optionKey(option: string): string {
  const eq = option.indexOf('=');
  return (eq < 0 ? option : option.slice(0, eq)).trim().toLowerCase();
}

/**
 * The recorded options (PoolInitialised.options: effectiveOptions' strmap — sizes in bytes, booleans as
 * true/false, dm.mkfsarg and dm.mountopt as JSON arrays of texts) back as `dm.key=value` strings that
 * parseOptions accepts and that mean the same options.
 *
 * `baseSize`: the base image's current size. The recorded dm.basesize is the size at set-up; the base may
 * have grown since (init --opt dm.basesize=…), and the driver refuses a dm.basesize below the base's size,
 * so the larger of the two is passed. `dataSize`: a loopback pool's current data size, for dm.loopdatasize
 * in the same way (init --opt dm.loopdatasize=… grows the pool).
 */
export function optionsFromRecorded(recorded: Readonly<Record<string, string>>, baseSize?: number, dataSize?: number): string[] {
  const out: string[] = [];
  const known = OPTION_NAMES as readonly string[];
  const keys = Object.keys(recorded).sort((a, b) => (known.indexOf(a) + 1 || Infinity) - (known.indexOf(b) + 1 || Infinity) || (a < b ? -1 : 1));
  for (const key of keys) {
    const text = recorded[key]!;
    if (REPEATABLE.has(key)) {
      for (const t of recordedTexts(text)) if (t.trim() !== '') out.push(`${key}=${t}`);
      continue;
    }
    if (text.trim() === '') continue;
    const grown = key === 'dm.basesize' ? baseSize : key === 'dm.loopdatasize' ? dataSize : undefined;
    if (grown !== undefined && /^\d+$/.test(text) && grown > Number(text)) {
      out.push(`${key}=${grown}`);
      continue;
    }
    out.push(`${key}=${text}`);
  }
  // effectiveOptions records dm.blocksize always; an adopted pool (dm.thinpooldev) brings its own and the
  // parser refuses the pair.
  if (out.some((o) => optionKey(o) === 'dm.thinpooldev')) return out.filter((o) => optionKey(o) !== 'dm.blocksize');
  return out;
}

/**
 * `init --opt …` on a home that has a pool: the recorded options, except those the user gives again (which
 * replace them; a repeatable one replaces all its recorded values). Giving any option that says where the pool
 * lives (dm.thinpooldev, dm.datadev, …) drops every recorded one of those, so that a change of location is
 * refused by the driver for what it is (ERR_THINPOOL_INIT), not as a conflict with the recorded sizes.
 */
export function mergeOptions(recorded: readonly string[], given: readonly string[]): string[] {
  const givenKeys = new Set(given.map(optionKey));
  const relocates = [...givenKeys].some((k) => LOCATION.has(k));
  const adopts = givenKeys.has('dm.thinpooldev');
  const kept = recorded.filter((o) => {
    const k = optionKey(o);
    if (givenKeys.has(k)) return false;
    if (relocates && LOCATION.has(k)) return false;
    if (adopts && k === 'dm.blocksize') return false;
    return true;
  });
  return [...kept, ...given];
}

/** The journal's state, or null when the home has no journal yet. Nothing is created. */
async function readState(home: string): Promise<State | null> {
  const dir = path.join(home, 'journal');
  let j: Journal;
  try {
    j = await Journal.openReader(dir);
  } catch (err) {
    // No journal yet is "no pool" (init makes one); a home that is a file, a foreign directory or one we may
    // not read is refused with its own code, and nothing is created.
    if (isCode(err, 'ERR_NO_JOURNAL')) return null;
    throw err;
  }
  try {
    // Refused here, on the reader, before the driver opens the journal for writing (which would let LevelDB
    // rewrite its files): the evidence of damage stays as it was found.
    await requireVerifiedTail(j);
    return await loadState(j);
  } finally {
    await j.close();
  }
}

/** The options a call runs with: the journal's (re-derived), with `given` merged in (init only). */
function optionsFor(state: State | null, given: readonly string[]): string[] {
  const pool = state?.pool;
  if (!pool) return [...given];
  const recorded = optionsFromRecorded(pool.options, state!.devices.get(BASE_HASH)?.size, pool.loopback ? pool.dataSize : undefined);
  return mergeOptions(recorded, given);
}

/** `key=value` as a message shows it (quoted when the value has spaces, e.g. a dm.mkfsarg). */
function showOption(key: string, text: string): string {
  return /\s/.test(text) || text === '' ? `${key}=${JSON.stringify(text)}` : `${key}=${text}`;
}

/** A recorded option as the texts it was given with: repeatable ones are JSON arrays; absent is none. */
function recordedShown(key: string, text: string | undefined): string {
  const texts = text === undefined ? [] : REPEATABLE.has(key) ? recordedTexts(text) : [text];
  return texts.length === 0 ? `without ${key}` : `with ${texts.map((t) => showOption(key, t)).join(' ')}`;
}

/**
 * `init --opt …` on a home that has a pool. The journal records the options once, at set-up
 * (PoolInitialised.options), and every later call runs with those, so an option given now takes effect only
 * where an event records the change:
 *   - dm.basesize above the base image's size: the base grows (the driver journals DeviceResized at open);
 *   - dm.loopdatasize above a loopback pool's data size: the pool grows (PoolResized, the returned `growData`);
 *   - the same value as in force: nothing to do.
 * Anything else — another value of any other option, or one of those two below the current size — would be
 * in force for this one call and silently gone at the next, so it is refused (ERR_BAD_OPTION naming the
 * option and both values) before anything is touched. Malformed or conflicting options are ERR_BAD_OPTION
 * from the parser, also before anything is touched. Values are compared in effectiveOptions' normal form
 * (sizes in bytes, booleans true/false), so `64M` and `67108864` are the same value.
 */
function checkOptionChanges(state: State, given: readonly string[]): { growData: number | null } {
  const pool = state.pool!;
  const merged = optionsFor(state, given);
  // Probed facts (xfs, deferred removal) are the driver's to check with the kernel at open; here the
  // permissive defaults only normalise the values.
  const now = effectiveOptions(parseOptions(merged, {}));
  const texts = new Map<string, string[]>();
  for (const o of given) {
    const k = optionKey(o);
    texts.set(k, [...(texts.get(k) ?? []), o.slice(o.indexOf('=') + 1).trim()]);
  }
  const shownGiven = (k: string) => texts.get(k)!.map((t) => showOption(k, t)).join(' ');
  let growData: number | null = null;
  for (const key of texts.keys()) {
    const value = now[key];
    const recorded = pool.options[key];
    if (key === 'dm.basesize' || (key === 'dm.loopdatasize' && pool.loopback)) {
      const current = key === 'dm.basesize' ? state.devices.get(BASE_HASH)?.size ?? Number(recorded) : pool.dataSize;
      const what = key === 'dm.basesize' ? 'the base image' : 'the pool\'s data';
      if (Number(value) < current) {
        throw new ThinjournalError('ERR_BAD_OPTION', `${shownGiven(key)}: ${what} is ${current} bytes now (the pool was set up ${recordedShown(key, recorded)}); it can only grow`, { option: key, text: texts.get(key)!.join(' ') });
      }
      if (key === 'dm.loopdatasize' && Number(value) > current) growData = Number(value);
      continue;
    }
    if (value !== recorded) {
      throw new ThinjournalError('ERR_BAD_OPTION', `${shownGiven(key)}: the pool was set up ${recordedShown(key, recorded)}; this option cannot change after init (the journal records options once, at set-up)`, { option: key, text: texts.get(key)!.join(' ') });
    }
  }
  return { growData };
}

/** `EACCES (permission denied)`: the errno and its text from a Node file-system error's message. */
function errnoText(errno: string, err: unknown): string {
  const m = /^[A-Z]+: ([^,]+),/.exec(err instanceof Error ? err.message : '');
  return m ? `${errno} (${m[1]})` : errno;
}

const homeError = (home: string, message: string, cause?: unknown) => new ThinjournalError('ERR_BAD_PATH', message, { path: home, ...(cause === undefined ? {} : { cause }) });
const errnoOf = (err: unknown) => (err as { code?: string }).code ?? 'EIO';

/**
 * init's home must be a directory this process can write, or be creatable in one. Checked before anything
 * is read or made; returns the missing components, outermost first (for makeHome). Errors are ERR_BAD_PATH
 * naming the path and the errno.
 */
function homeToMake(home: string): string[] {
  const bad = (message: string, cause?: unknown) => homeError(home, message, cause);
  const code = errnoOf;
  const errno = (err: unknown) => errnoText(code(err), err);
  const missing: string[] = [];
  for (let p = home; ; p = path.dirname(p)) {
    let st;
    try {
      st = statSync(p);
    } catch (err) {
      // ENOTDIR: a file further up; the walk reaches it and says so.
      if (code(err) !== 'ENOENT' && code(err) !== 'ENOTDIR') throw bad(`home ${JSON.stringify(home)} cannot be used: stat ${JSON.stringify(p)}: ${errno(err)}`, err);
      missing.unshift(p);
      continue;
    }
    if (!st.isDirectory()) {
      throw bad(p === home ? `home ${JSON.stringify(home)} is not a directory (a file is in the way)` : `home ${JSON.stringify(home)} cannot be created: ${JSON.stringify(p)} is not a directory`);
    }
    try {
      accessSync(p, fsConstants.W_OK | fsConstants.X_OK);
    } catch (err) {
      throw bad(p === home ? `home ${JSON.stringify(home)} is not writable: ${errno(err)}` : `home ${JSON.stringify(home)} cannot be created in ${JSON.stringify(p)}: ${errno(err)}`, err);
    }
    break;
  }
  return missing;
}

/**
 * Makes the missing components of init's home one at a time (0700, like the driver's), so that one that
 * cannot be made is named with its errno — Node's recursive mkdir spins forever where mkdir gives ENOENT under
 * an existing parent (/proc).
 */
function makeHome(home: string, missing: readonly string[]): void {
  for (const dir of missing) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if (errnoOf(err) === 'EEXIST' && statSync(dir).isDirectory()) continue;
      throw homeError(home, `home ${JSON.stringify(home)} cannot be created: mkdir ${JSON.stringify(dir)}: ${errnoText(errnoOf(err), err)}`, err);
    }
  }
}

/** A file-system failure inside home that reached us without a code of ours (mkdir, open, chmod …): ERR_BAD_PATH. */
function homeFailure(home: string, err: unknown): unknown {
  if (err instanceof ThinjournalError || typeof err !== 'object' || err === null) return err;
  const e = err as { code?: unknown; syscall?: unknown; path?: unknown };
  if (typeof e.code !== 'string' || typeof e.syscall !== 'string' || typeof e.path !== 'string') return err;
  return new ThinjournalError('ERR_BAD_PATH', `home ${JSON.stringify(home)}: ${e.syscall} ${JSON.stringify(e.path)}: ${errnoText(e.code, err)}`, { path: e.path, cause: err });
}

interface Opened {
  readonly driver: Driver;
  readonly home: string;
  /** The journal had no pool before this call (init set it up). */
  readonly created: boolean;
  readonly options: readonly string[];
  /** init --opt dm.loopdatasize above the pool's data size: the size to grow the pool to (see checkOptionChanges). */
  readonly growData: number | null;
}

/**
 * Opens the driver for one call. Without `init`, a home with no pool is ERR_POOL_NOT_INITIALISED (nothing is
 * created: a pool of default size must not appear because of a typo in --home). After opening, one pass of
 * the deferred worker runs (finishing deferred removals and deletions that have become possible), as the
 * daemon's timer would.
 */
async function openDriver(v: Record<string, unknown>, io: Io, given: readonly string[] | null): Promise<Opened> {
  const home = absoluteHome(v, io);
  const backend = backendFor(io);
  // init: a home that is a file or cannot be made is named as such (ERR_BAD_PATH), before the journal is looked for.
  const missing = given === null ? [] : homeToMake(home);
  const state = await readState(home);
  if (given === null && !state?.pool) {
    throw new ThinjournalError('ERR_POOL_NOT_INITIALISED', `${home} has no pool: run \`thinjournal init --home ${home} [--opt dm.key=value]…\` first`);
  }
  let growData: number | null = null;
  if (state?.pool && given !== null && given.length > 0) ({ growData } = checkOptionChanges(state, given));
  const options = optionsFor(state, given ?? []);
  if (given !== null) {
    // Malformed options are refused before the home is made (the driver parses them again, with the kernel's facts).
    if (!state?.pool) parseOptions(options, {});
    makeHome(home, missing);
  }
  let driver: Driver;
  try {
    driver = await init(home, options, {}, {
      backend, workers: false, actor: ACTOR,
      logger: (level, message) => io.stderr.write(`devmapper(${level}): ${message}\n`),
    });
  } catch (err) {
    throw homeFailure(home, err);
  }
  try {
    await driver.deviceSet.cleanupDeferred();
  } catch (err) {
    io.stderr.write(`warning: deferred work: ${(err as Error).message}\n`);
  }
  return { driver, home: driver.home, created: !state?.pool, options, growData };
}

/** Runs `fn` on an opened driver and closes it (the kernel is left as it is). */
async function withDriver<T>(v: Record<string, unknown>, io: Io, fn: (o: Opened) => Promise<T>, given: readonly string[] | null = null): Promise<T> {
  const o = await openDriver(v, io, given);
  try {
    return await fn(o);
  } finally {
    await o.driver.close();
  }
}

function idArg(p: string[], what = 'ID'): string {
  const id = p[0];
  if (id === undefined) throw new UsageError(`missing ${what}`);
  return checkHash(id, { allowBase: false, what: 'id' });
}

function writeJson(io: Io, value: unknown): void {
  io.stdout.write(JSON.stringify(value) + '\n');
}

function printPairs(io: Io, pairs: readonly (readonly [string, string])[], indent = ''): void {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  for (const [k, val] of pairs) io.stdout.write(`${indent}${(k + ':').padEnd(w + 1)} ${val}\n`);
}

function deviceJson(o: Opened, id: string): Record<string, unknown> {
  const d = o.driver.deviceSet.deviceInfo(id)!;
  return {
    id, deviceId: d.deviceId, size: d.size, parent: d.parentHash, txId: d.txId, active: d.active,
    dmName: d.dmName, mounts: d.mounts.map((m) => m.path), removalDeferred: d.removalDeferred, deletionDeferred: d.deletionDeferred,
  };
}

const parentLabel = (p: string | null) => (p === '' ? 'the base image' : p === null ? 'nothing' : JSON.stringify(p));

/** create and snapshot: Docker's Create (a thin snapshot of `parent`, "" = the base image). */
async function createDevice(v: Record<string, unknown>, io: Io, id: string, parent: string): Promise<number> {
  checkHash(parent, { allowBase: true, what: 'parent id' });
  const size = v.size as string | undefined;
  if (size !== undefined && size.trim() === '') throw new UsageError('--size is empty');
  return withDriver(v, io, async (o) => {
    await o.driver.create(id, parent, '', size === undefined ? {} : { size });
    const d = deviceJson(o, id);
    if (v.json === true) writeJson(io, d);
    else io.stdout.write(`created ${id}: thin id ${String(d.deviceId)}, ${String(d.size)} bytes, a snapshot of ${parentLabel(parent)}\n`);
    return EXIT.OK;
  });
}

function statusJson(st: Status, pairs: [string, string][]): Record<string, unknown> {
  return { ...st, driverStatus: pairs };
}

/** The mount point of device `id` (as Driver.get uses it); the id is checked first, so it stays inside. */
function mountPoint(o: Opened, id: string): string {
  return path.join(o.driver.deviceSet.layout.mnt, id);
}

function removeMountPoint(mp: string): void {
  try {
    if (existsSync(mp)) rmdirSync(mp);
  } catch {
    // still a mount point, or not empty: leave it
  }
}

export const DEVICE_COMMANDS: Record<string, Command> = {
  init: {
    summary: 'set up the home: the thin pool (loopback files under home unless dm.thinpooldev/dm.datadev) and the base image on first use; recovery and the base image check on later ones',
    usage: 'thinjournal init [--home DIR] [--opt dm.key=value]… [--json]',
    example: 'thinjournal init --home /var/lib/thinjournal --opt dm.loopdatasize=20G --opt dm.basesize=10G --opt dm.fs=ext4',
    options: { opt: { type: 'string', multiple: true } },
    async run(v, _p, io) {
      const given = (v.opt as string[] | undefined) ?? [];
      return withDriver(v, io, async (o) => {
        const ds = o.driver.deviceSet;
        if (o.growData !== null) {
          try {
            await ds.resizePool(o.growData);
          } catch (err) {
            // Checked before the driver was opened: what fails here failed while growing, not the input.
            throw new ThinjournalError('ERR_THINPOOL_INIT', `growing the pool's data to ${o.growData} bytes (dm.loopdatasize) failed: ${(err as Error).message}`, { cause: err });
          }
        }
        const st = await ds.status();
        const pairs = statusPairs(st, ds);
        if (v.json === true) {
          writeJson(io, {
            home: o.home, created: o.created, poolName: ds.poolName, transactionId: ds.transactionId,
            baseDeviceUuid: ds.baseDeviceUuid, baseDeviceFilesystem: ds.baseDeviceFilesystem, options: o.options,
            status: st, driverStatus: pairs,
          });
        } else {
          io.stdout.write(`${o.created ? 'initialised' : 'opened'} ${o.home}: pool ${ds.poolName}, base image ${ds.baseDeviceFilesystem} ${ds.baseDeviceUuid}, transaction ${ds.transactionId}\n`);
          printPairs(io, pairs, '  ');
        }
        return EXIT.OK;
      }, given);
    },
  },
  create: {
    summary: 'create device ID as a thin snapshot of --parent (default: the base image); Docker\'s Create',
    usage: 'thinjournal create ID [--parent P] [--size SIZE] [--home DIR] [--json]',
    example: 'thinjournal create layer2 --parent layer1 --size 20G',
    options: { parent: { type: 'string' }, size: { type: 'string' } },
    positionals: { min: 1, max: 1, names: 'ID' },
    async run(v, p, io) {
      const id = idArg(p);
      return createDevice(v, io, id, (v.parent as string | undefined) ?? '');
    },
  },
  snapshot: {
    summary: 'create device ID as a thin snapshot of SRC (--from "" is the base image); the same operation as create',
    usage: 'thinjournal snapshot ID --from SRC [--size SIZE] [--home DIR] [--json]',
    example: 'thinjournal snapshot backup-1 --from app-data',
    options: { from: { type: 'string' }, size: { type: 'string' } },
    positionals: { min: 1, max: 1, names: 'ID' },
    async run(v, p, io) {
      const id = idArg(p);
      if (v.from === undefined) throw new UsageError('missing --from SRC (the device to snapshot; "" is the base image)');
      return createDevice(v, io, id, v.from as string);
    },
  },
  rm: {
    summary: 'delete device ID (Docker\'s DeleteDevice); busy: deferred if dm.use_deferred_deletion is on, unless --sync',
    usage: 'thinjournal rm ID [--sync] [--home DIR] [--json]',
    example: 'thinjournal rm layer2 --sync',
    options: { sync: { type: 'boolean' } },
    positionals: { min: 1, max: 1, names: 'ID' },
    async run(v, p, io) {
      const id = idArg(p);
      return withDriver(v, io, async (o) => {
        const ds = o.driver.deviceSet;
        await ds.deleteDevice(id, v.sync === true);
        const deferred = ds.deviceInfo(id)?.deletionDeferred === true;
        if (!ds.deviceInfo(id)) removeMountPoint(mountPoint(o, id));
        if (v.json === true) writeJson(io, { id, deleted: !deferred, deferred });
        else io.stdout.write(deferred ? `${id} is busy: deletion deferred (dm.use_deferred_deletion); it is deleted once nothing holds it open\n` : `removed ${id}\n`);
        return EXIT.OK;
      });
    },
  },
  mount: {
    summary: 'activate and mount device ID at <home>/mnt/ID and print that path; it stays mounted after the command exits',
    usage: 'thinjournal mount ID [--label L] [--home DIR] [--json]',
    example: 'cd "$(thinjournal mount layer2)" && ls',
    options: { label: { type: 'string' } },
    positionals: { min: 1, max: 1, names: 'ID' },
    async run(v, p, io) {
      const id = idArg(p);
      return withDriver(v, io, async (o) => {
        const ds = o.driver.deviceSet;
        const mp = mountPoint(o, id);
        await ds.mountDevice(id, mp, (v.label as string | undefined) ?? '');
        const d = ds.deviceInfo(id)!;
        if (v.json === true) writeJson(io, { id, path: mp, device: ds.backend.devicePath(d.dmName!), options: d.mounts.find((m) => m.path === mp)?.options ?? null });
        else io.stdout.write(`${mp}\n`);
        return EXIT.OK;
      });
    },
  },
  umount: {
    summary: 'unmount device ID from <home>/mnt/ID (and deactivate it after its last mount)',
    usage: 'thinjournal umount ID [--home DIR] [--json]',
    example: 'thinjournal umount layer2',
    options: {},
    positionals: { min: 1, max: 1, names: 'ID' },
    async run(v, p, io) {
      const id = idArg(p);
      return withDriver(v, io, async (o) => {
        const ds = o.driver.deviceSet;
        const mp = mountPoint(o, id);
        await ds.unmountDevice(id, mp);
        removeMountPoint(mp);
        const d = ds.deviceInfo(id)!;
        if (v.json === true) writeJson(io, { id, path: mp, active: d.active, removalDeferred: d.removalDeferred });
        else io.stdout.write(`unmounted ${id} from ${mp}${d.removalDeferred ? ' (still open elsewhere: removal deferred)' : d.active ? ' (still active)' : ''}\n`);
        return EXIT.OK;
      });
    },
  },
  status: {
    summary: 'the pool\'s status as `docker info` prints it for devicemapper; with ID, that device\'s status',
    usage: 'thinjournal status [ID] [--home DIR] [--json]',
    example: 'thinjournal status --json | jq .data.available',
    options: {},
    positionals: { min: 0, max: 1, names: '[ID]' },
    async run(v, p, io) {
      const id = p.length ? idArg(p) : null;
      return withDriver(v, io, async (o) => {
        const ds = o.driver.deviceSet;
        if (id !== null) {
          const s = await ds.getDeviceStatus(id);
          if (v.json === true) writeJson(io, { id, ...s });
          else printPairs(io, [
            ['Device', id], ['Device Id', String(s.deviceId)], ['Size', `${s.size} bytes`], ['Size in sectors', String(s.sizeInSectors)],
            ['Transaction Id', String(s.transactionId)], ['Mapped sectors', String(s.mappedSectors)], ['Highest mapped sector', String(s.highestMappedSector)],
          ]);
          return EXIT.OK;
        }
        const st = await ds.status();
        const pairs = statusPairs(st, ds);
        if (v.json === true) writeJson(io, statusJson(st, pairs));
        else printPairs(io, pairs);
        return EXIT.OK;
      });
    },
  },
  resize: {
    summary: 'grow the pool\'s data to SIZE (Docker\'s ResizePool): a loopback pool\'s data file is grown first; a block device must already be that large',
    usage: 'thinjournal resize --size SIZE [--home DIR] [--json]',
    example: 'thinjournal resize --size 200G',
    options: { size: { type: 'string' } },
    async run(v, _p, io) {
      const text = v.size as string | undefined;
      if (text === undefined) throw new UsageError('missing --size SIZE (the pool\'s new data size, e.g. 200G)');
      const size = parseSize('--size', text);
      return withDriver(v, io, async (o) => {
        const ds = o.driver.deviceSet;
        await ds.resizePool(size);
        const st = await ds.status();
        if (v.json === true) writeJson(io, { poolName: st.poolName, dataSize: size, dataTotal: st.data.total, transactionId: ds.transactionId });
        else io.stdout.write(`pool ${st.poolName}: data ${size} bytes (transaction ${ds.transactionId})\n`);
        return EXIT.OK;
      });
    },
  },
  shutdown: {
    summary: 'Docker\'s Shutdown: unmount and deactivate every device, remove the pool, detach its loop devices (the next command re-creates them from the journal)',
    usage: 'thinjournal shutdown [--home DIR] [--json]',
    example: 'thinjournal shutdown --home /var/lib/thinjournal',
    options: {},
    async run(v, _p, io) {
      const o = await openDriver(v, io, null);
      const name = o.driver.deviceSet.poolName;
      await o.driver.cleanup(); // closes the journal too, even when a step failed (it rethrows the first error)
      if (v.json === true) writeJson(io, { home: o.home, poolName: name, shutdown: true });
      else io.stdout.write(`shut down ${o.home}: devices unmounted and deactivated, pool ${name} removed\n`);
      return EXIT.OK;
    },
  },
};
