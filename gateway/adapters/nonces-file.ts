// The memory store's replay cache (SPA packet digests, relay nonces), kept across restarts in a
// file next to the state file. Without it, a packet captured before a restart could be replayed
// after it while its timestamp is still inside MAX_SPA_PACKET_AGE, and with fwknop -s the
// replayer would be granted its own address. A claim resolves only once the file holding it is
// on disk (atomic replace, fsync; concurrent claims share one write), so neither a restart nor a
// crash reopens the window. Bounded like the cache: only live entries (at most maxEntries, a
// few MB) are written; claims come only from packets that authenticated, so the write rate is
// the rate of legitimate requests, never the rate of a flood.
import { readFile, rename } from 'node:fs/promises';
import { z } from 'zod';
import { describeError, kgwError } from '../core/errors.ts';
import type { Clock, Logger, NonceStore } from '../ports.ts';
import { createMemoryNonceStore } from '../kit/nonces-memory.ts';
import { writeAtomic, type CorruptStateFile } from './store-memory.ts';

const ReplayFileSchema = z.object({ version: z.literal(1), savedAt: z.number(), entries: z.array(z.tuple([z.string(), z.number()])) });

export interface FileNonceStoreOptions {
  readonly file: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly maxEntries?: number;
  /** As the state file: an unreadable cache stops the start unless it may be moved aside. */
  readonly onCorrupt?: CorruptStateFile;
}

async function readEntries(file: string): Promise<[string, number][]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw kgwError('KGW_STATE_FILE', `cannot read the replay cache ${file}: ${describeError(err)}`, { path: file }, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw kgwError('KGW_STATE_FILE', `the replay cache ${file} is not JSON (${describeError(err)}); fix or move it aside`, { path: file }, err);
  }
  const parsed = ReplayFileSchema.safeParse(json);
  if (!parsed.success) throw kgwError('KGW_STATE_FILE', `the replay cache ${file} is invalid (${parsed.error.issues[0]?.message ?? 'invalid'}); fix or move it aside`, { path: file });
  return parsed.data.entries;
}

export async function createFileNonceStore(opts: FileNonceStoreOptions): Promise<NonceStore & { flush(): Promise<void> }> {
  const { file, clock, logger } = opts;
  let entries: [string, number][];
  try {
    entries = await readEntries(file);
  } catch (err) {
    if (opts.onCorrupt !== 'move-aside') throw err;
    const aside = `${file}.corrupt-${clock.now()}`;
    await rename(file, aside).catch((renameErr: unknown) => {
      throw kgwError('KGW_STATE_FILE', `cannot move the corrupt replay cache ${file} aside: ${describeError(renameErr)}`, { path: file }, renameErr);
    });
    logger.error({ event: 'store.replay_corrupt', path: file, movedTo: aside, err: describeError(err) }, `moved the unreadable replay cache aside to ${aside}`);
    entries = [];
  }
  const cache = createMemoryNonceStore({ clock, restore: entries, ...(opts.maxEntries !== undefined ? { maxEntries: opts.maxEntries } : {}) });
  logger.info({ event: 'store.replay_loaded', path: file, entries: cache.size }, `loaded ${cache.size} live replay-cache entries from ${file}`);

  // Coalesced writer: one write in flight; claims during it are covered by exactly one more.
  let dirty = false;
  let writing: Promise<void> | undefined;
  const writeLoop = async (): Promise<void> => {
    while (dirty) {
      dirty = false;
      try {
        await writeAtomic(file, `${JSON.stringify({ version: 1, savedAt: clock.now(), entries: cache.snapshot() })}\n`);
      } catch (err) {
        // The entry still protects this process; only a restart would forget it. Said, not hidden.
        logger.error({ event: 'store.replay_write_failed', path: file, err: describeError(err) }, `cannot write the replay cache ${file}: a restart would forget the newest entries`);
      }
    }
  };
  const persist = (): Promise<void> => {
    dirty = true;
    writing ??= writeLoop().finally(() => (writing = undefined));
    return writing;
  };

  return {
    async claim(scope, nonce, ttlMs) {
      if (!(await cache.claim(scope, nonce, ttlMs))) return false;
      await persist();
      return true;
    },
    async flush() {
      while (writing) await writing;
    },
  };
}
