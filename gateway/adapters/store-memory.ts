// The single-node grant store: grants in memory, mirrored to a state file that is replaced
// atomically (tmp + fsync + rename + fsync dir) so a crash leaves either the old or the new
// state, never half of one. Also home of the pieces the Redis store reuses: the Grant parser for
// anything read back from disk or the network, and the live-grant cache with its expiry timer.
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { isLive, mergeGrant, type Grant } from '../core/grant.ts';
import { grantableIp } from '../core/ip.ts';
import { describeError, kgwError } from '../core/errors.ts';
import type { Clock, GrantStore, Logger, StoreChange } from '../ports.ts';

const PortSchema = z.object({ port: z.number().int().min(1).max(65535), proto: z.enum(['tcp', 'udp']) });

/** A grant as read back from a file or Redis: same shape, and the address must still be grantable. */
export const GrantSchema = z
  .object({
    id: z.string().min(1),
    ip: z.string(),
    family: z.union([z.literal(4), z.literal(6)]),
    ports: z.array(PortSchema),
    door: z.string().min(1),
    source: z.enum(['knock', 'spa', 'relay', 'manual']),
    createdAt: z.number().int().nonnegative(),
    expiresAt: z.number().int().nullable(),
    nodeId: z.string(),
  })
  .transform((g, ctx): Grant => {
    try {
      const ip = grantableIp(g.ip);
      if (ip.family !== g.family) ctx.addIssue({ code: 'custom', path: ['family'], message: `${g.ip} is not IPv${g.family}` });
      return Object.freeze({ ...g, ip: ip.address, ports: Object.freeze(g.ports.map((p) => Object.freeze(p))) });
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['ip'], message: describeError(err) });
      return z.NEVER;
    }
  });

const StateFileSchema = z.object({ version: z.literal(1), savedAt: z.number(), grants: z.array(GrantSchema) });

type Watcher = (change: StoreChange | undefined) => void;
// setTimeout overflows (and fires at once) beyond 2^31-1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The live grants of one node and their watchers. A timer armed for the earliest expiry removes
 * expired grants and tells the watchers, so a reconciler closes on time without polling.
 */
export class GrantCache {
  readonly #grants = new Map<string, Grant>();
  readonly #watchers = new Set<Watcher>();
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #onExpired: (ids: readonly string[]) => void;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;

  constructor(opts: { clock: Clock; logger: Logger; onExpired?: (ids: readonly string[]) => void }) {
    this.#clock = opts.clock;
    this.#logger = opts.logger;
    this.#onExpired = opts.onExpired ?? (() => undefined);
  }

  get(id: string): Grant | undefined {
    return this.#grants.get(id);
  }

  get size(): number {
    return this.#grants.size;
  }

  /** Stores as given (callers merge), tells the watchers. */
  set(grant: Grant): void {
    this.#grants.set(grant.id, grant);
    this.#arm(grant.expiresAt);
    this.emit({ kind: 'put', grant });
  }

  delete(id: string): Grant | undefined {
    const old = this.#grants.get(id);
    if (!old) return undefined;
    this.#grants.delete(id);
    this.emit({ kind: 'remove', id });
    return old;
  }

  /**
   * Replaces everything with an authoritative set, silently: it is what a reader just read, and a
   * hint here would make a level-triggered reader read again forever.
   */
  replaceAll(grants: Iterable<Grant>): void {
    this.#grants.clear();
    for (const g of grants) {
      this.#grants.set(g.id, g);
      this.#arm(g.expiresAt);
    }
  }

  /** Live grants without side effects (for a snapshot taken while a sweep announces). */
  peek(): Grant[] {
    const now = this.#clock.now();
    return [...this.#grants.values()].filter((g) => isLive(g, now));
  }

  /** Live grants; expired ones are dropped (and announced) on the way. */
  live(): Grant[] {
    this.#sweep();
    return [...this.#grants.values()];
  }

  watch(onChange: Watcher): () => void {
    const w: Watcher = (c) => onChange(c);
    this.#watchers.add(w);
    return () => void this.#watchers.delete(w);
  }

  emit(change: StoreChange | undefined): void {
    for (const w of this.#watchers) {
      try {
        w(change);
      } catch (err) {
        this.#logger.error({ event: 'store.watcher_failed', err: describeError(err) }, 'a store watcher threw');
      }
    }
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#watchers.clear();
  }

  #arm(expiresAt: number | null): void {
    if (expiresAt === null || expiresAt >= this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = expiresAt;
    const delay = Math.min(MAX_TIMER_MS, Math.max(1, expiresAt - this.#clock.now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#sweep();
    }, delay);
    // Expiry must never keep a stopping daemon alive.
    this.#timer.unref();
  }

  #sweep(): void {
    const now = this.#clock.now();
    const expired: string[] = [];
    let next: number | null = null;
    for (const g of this.#grants.values()) {
      if (!isLive(g, now)) expired.push(g.id);
      else if (g.expiresAt !== null && (next === null || g.expiresAt < next)) next = g.expiresAt;
    }
    for (const id of expired) this.#grants.delete(id);
    // Re-arm before telling anyone, so a watcher that re-reads sees a consistent timer.
    if (next !== null && next < this.#timerAt) {
      this.#timerAt = Infinity;
      clearTimeout(this.#timer);
      this.#arm(next);
    }
    if (expired.length === 0) return;
    this.#onExpired(expired);
    for (const id of expired) this.emit({ kind: 'remove', id });
  }
}

export type CorruptStateFile = 'fail' | 'move-aside';

export interface MemoryStoreOptions {
  /** Where grants survive a restart; none = memory only. */
  readonly stateFile?: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /**
   * An unreadable state file stops the start (KGW_STATE_FILE) by default: silently starting empty
   * would drop grants. 'move-aside' renames it to `<file>.corrupt-<unix ms>` and starts empty.
   */
  readonly onCorruptStateFile?: CorruptStateFile;
}

export interface MemoryStore extends GrantStore {
  readonly kind: 'memory';
  /** Resolves once everything changed so far is on disk (or the last write failed, logged). */
  flush(): Promise<void>;
}

async function writeAtomic(file: string, data: string): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.tmp-${process.pid}`);
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // The rename itself lives in the directory: without this, a power loss can undo it.
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Reads the state file: missing = no grants; unreadable or invalid = KGW_STATE_FILE. */
export async function readStateFile(file: string): Promise<Grant[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw kgwError('KGW_STATE_FILE', `cannot read the state file ${file}: ${describeError(err)}`, { path: file }, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw kgwError('KGW_STATE_FILE', `the state file ${file} is not JSON (${describeError(err)}); fix or move it aside`, { path: file }, err);
  }
  const parsed = StateFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid';
    throw kgwError('KGW_STATE_FILE', `the state file ${file} is invalid (${where}); fix or move it aside`, { path: file, issue: where });
  }
  return parsed.data.grants;
}

export async function createMemoryStore(opts: MemoryStoreOptions): Promise<MemoryStore> {
  const { stateFile, clock } = opts;
  const logger = opts.logger;
  let closed = false;
  // Coalesced writer: at most one write in flight; changes during it cause exactly one more.
  let dirty = false;
  let writing: Promise<void> | undefined;

  const snapshot = (): string =>
    `${JSON.stringify({ version: 1, savedAt: clock.now(), grants: cache.peek() }, null, 1)}\n`;

  const writeLoop = async (file: string): Promise<void> => {
    while (dirty) {
      dirty = false;
      try {
        await writeAtomic(file, snapshot());
      } catch (err) {
        // The grants stay live in memory; the next change retries the write.
        logger.error({ event: 'store.state_write_failed', path: file, err: describeError(err) }, `cannot write the state file ${file}`);
      }
    }
  };

  const persist = (): void => {
    if (!stateFile) return;
    dirty = true;
    writing ??= writeLoop(stateFile).finally(() => (writing = undefined));
  };

  const cache = new GrantCache({ clock, logger, onExpired: persist });

  if (stateFile) {
    let grants: Grant[];
    try {
      grants = await readStateFile(stateFile);
    } catch (err) {
      if (opts.onCorruptStateFile !== 'move-aside') throw err;
      const aside = `${stateFile}.corrupt-${clock.now()}`;
      await rename(stateFile, aside).catch((renameErr: unknown) => {
        throw kgwError('KGW_STATE_FILE', `cannot move the corrupt state file ${stateFile} aside: ${describeError(renameErr)}`, { path: stateFile }, renameErr);
      });
      logger.error({ event: 'store.state_corrupt', path: stateFile, movedTo: aside, err: describeError(err) }, `moved the unreadable state file aside to ${aside}; starting without its grants`);
      grants = [];
    }
    const now = clock.now();
    const live = grants.filter((g) => isLive(g, now));
    cache.replaceAll(live);
    logger.info({ event: 'store.loaded', path: stateFile, grants: live.length, expired: grants.length - live.length }, `loaded ${live.length} grants from ${stateFile}`);
    if (live.length !== grants.length) persist();
  }

  return {
    kind: 'memory',
    put(grant) {
      if (closed) return Promise.reject(kgwError('KGW_STORE_UNAVAILABLE', 'the store is closed'));
      const merged = mergeGrant(cache.get(grant.id), grant);
      if (!isLive(merged, clock.now())) return Promise.resolve(merged);
      cache.set(merged);
      persist();
      return Promise.resolve(merged);
    },
    remove(id) {
      if (closed) return Promise.reject(kgwError('KGW_STORE_UNAVAILABLE', 'the store is closed'));
      const old = cache.delete(id);
      if (old) persist();
      return Promise.resolve(old && isLive(old, clock.now()) ? old : undefined);
    },
    list() {
      return Promise.resolve(cache.live());
    },
    watch(onChange) {
      return cache.watch(onChange);
    },
    async flush() {
      while (writing) await writing;
    },
    async close() {
      if (closed) return;
      closed = true;
      while (writing) await writing;
      cache.close();
    },
  };
}
