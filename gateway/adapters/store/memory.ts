// The single-node grant store: grants in memory, mirrored to a state file that is replaced
// atomically (tmp + fsync + rename + fsync dir) so a crash leaves either the old or the new
// state, never half of one.
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { isLive, mergeGrant, type Grant } from '../../core/grant.ts';
import { describeError, kgwError } from '../../core/errors.ts';
import { coalesced } from '../../core/coalesce.ts';
import type { Clock, GrantStore, Logger } from '../../ports.ts';
import { GrantCache, GrantSchema } from './grant-cache.ts';

const StateFileSchema = z.object({ version: z.literal(1), savedAt: z.number(), grants: z.array(GrantSchema) });

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
  const snapshot = (): string =>
    `${JSON.stringify({ version: 1, savedAt: clock.now(), grants: cache.peek() }, null, 1)}\n`;

  // At most one write in flight; changes during it cause exactly one more.
  const write = coalesced(async () => {
    if (!stateFile) return;
    try {
      await writeAtomic(stateFile, snapshot());
    } catch (err) {
      // The grants stay live in memory; the next change retries the write.
      logger.error({ event: 'store.state_write_failed', path: stateFile, err: describeError(err) }, `cannot write the state file ${stateFile}`);
    }
  });
  const persist = (): void => {
    if (stateFile) void write.run();
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
    flush: () => write.idle(),
    async close() {
      if (closed) return;
      closed = true;
      await write.idle();
      cache.close();
    },
  };
}
