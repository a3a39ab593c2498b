/**
 * A mutable Map whose immutable snapshots cost O(1) to take, and whose writes cost O(1) whether or not
 * snapshots are held (the projection's live state: an operation must not cost O(live devices)).
 *
 * Representation (reverse diffs): a snapshot reads the live map, corrected by the old values of the keys
 * written since it was taken. Writes record the value a key had before its first write after the newest
 * snapshot into that snapshot's `undo`; an older snapshot reads its own undo, then the next newer snapshot's
 * view, and so on up to the live map. Invariants:
 *  - `undo` of a snapshot S holds exactly the keys written between S and the next snapshot (or now, for the
 *    newest), each with its value at S (ABSENT: not present at S);
 *  - the value of key k at S is the first hit for k in the undo maps from S towards the newest, else the
 *    live value;
 *  - a snapshot's `size` is fixed when it is taken.
 * A long chain (a snapshot held across many later snapshots) is compressed on read: the undo maps between
 * it and the newest are merged into its own, so a lookup never walks more than a few links.
 * The live map only holds the newest snapshot weakly: once nobody holds it, writes stop recording undo.
 */

const ABSENT: unique symbol = Symbol('absent');
type Undo<K, V> = Map<K, V | typeof ABSENT>;

/** Chain links a lookup may follow before the snapshot compresses its chain. */
const MAX_HOPS = 8;

export class FrozenMap<K, V> implements ReadonlyMap<K, V> {
  /** old values of the keys written after this snapshot and before the next (see the invariants above). */
  readonly undo: Undo<K, V> = new Map();
  /** the next newer snapshot; null while this is the newest. */
  next: FrozenMap<K, V> | null = null;

  constructor(private readonly live: ReadonlyMap<K, V>, readonly size: number) {}

  /** The value at this snapshot, or ABSENT. */
  private find(k: K): V | typeof ABSENT {
    let s: FrozenMap<K, V> | null = this;
    let hops = 0;
    while (s !== null) {
      const u = s.undo;
      if (u.size !== 0 && u.has(k)) return u.get(k)!;
      s = s.next;
      if (++hops > MAX_HOPS && s !== null) {
        this.compress();
        return this.find(k);
      }
    }
    const v = this.live.get(k);
    return v === undefined && !this.live.has(k) ? ABSENT : v!;
  }

  get(k: K): V | undefined {
    const v = this.find(k);
    return v === ABSENT ? undefined : v;
  }

  has(k: K): boolean {
    return this.find(k) !== ABSENT;
  }

  /** Merges the undo maps between this snapshot and the newest into this one's; the newest stays linked. */
  private compress(): void {
    let newest: FrozenMap<K, V> = this;
    while (newest.next !== null) newest = newest.next;
    for (let s = this.next; s !== null && s !== newest; s = s.next) {
      for (const [k, v] of s.undo) if (!this.undo.has(k)) this.undo.set(k, v);
    }
    this.next = newest === this ? null : newest;
  }

  /**
   * The entries as they were at this snapshot, materialised: a caller may iterate across awaits while the
   * live map changes underneath.
   */
  private materialise(): [K, V][] {
    let hops = 0;
    let corrected = false;
    for (let s: FrozenMap<K, V> | null = this; s !== null; s = s.next) {
      if (s.undo.size !== 0) corrected = true;
      hops++;
    }
    if (hops > MAX_HOPS) this.compress();
    const out: [K, V][] = [];
    if (!corrected) {
      for (const e of this.live) out.push(e);
      return out;
    }
    for (const [k, v] of this.live) {
      let hit = false;
      for (let s: FrozenMap<K, V> | null = this; s !== null; s = s.next) {
        const u = s.undo;
        if (u.size !== 0 && u.has(k)) {
          const old = u.get(k)!;
          if (old !== ABSENT) out.push([k, old]);
          hit = true;
          break;
        }
      }
      if (!hit) out.push([k, v]);
    }
    // Keys deleted from the live map since: their value here is the first undo entry towards the newest.
    const seen = new Set<K>();
    for (let s: FrozenMap<K, V> | null = this; s !== null; s = s.next) {
      for (const [k, old] of s.undo) {
        if (seen.has(k) || this.live.has(k)) continue;
        seen.add(k);
        if (old !== ABSENT) out.push([k, old]);
      }
    }
    return out;
  }

  entries(): MapIterator<[K, V]> {
    return this.materialise().values();
  }
  keys(): MapIterator<K> {
    return this.materialise().map((e) => e[0]).values();
  }
  values(): MapIterator<V> {
    return this.materialise().map((e) => e[1]).values();
  }
  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }
  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.materialise()) fn.call(thisArg, v, k, this);
  }
  get [Symbol.toStringTag](): string {
    return 'FrozenMap';
  }
}

/**
 * The live map. Its writes go through set/delete/clear (the Map methods), which record undo for the newest
 * snapshot; `snapshot()` is O(1).
 */
export class VersionedMap<K, V> extends Map<K, V> {
  private newest: WeakRef<FrozenMap<K, V>> | null = null;

  constructor(entries?: Iterable<readonly [K, V]> | null) {
    super();
    if (entries) for (const [k, v] of entries) super.set(k, v);
  }

  private record(k: K): void {
    const s = this.newest?.deref();
    if (s === undefined) {
      this.newest = null;
      return;
    }
    if (!s.undo.has(k)) s.undo.set(k, super.has(k) ? super.get(k)! : ABSENT);
  }

  override set(k: K, v: V): this {
    if (this.newest !== null) this.record(k);
    return super.set(k, v);
  }

  override delete(k: K): boolean {
    if (!super.has(k)) return false;
    if (this.newest !== null) this.record(k);
    return super.delete(k);
  }

  override clear(): void {
    if (this.newest !== null) for (const k of super.keys()) this.record(k);
    super.clear();
  }

  /** An immutable view of the map as it is now: O(1). */
  snapshot(): FrozenMap<K, V> {
    const s = this.newest?.deref();
    if (s !== undefined && s.undo.size === 0) return s; // nothing written since: the same version
    const f = new FrozenMap<K, V>(this, this.size);
    if (s !== undefined) s.next = f;
    this.newest = new WeakRef(f);
    return f;
  }
}
