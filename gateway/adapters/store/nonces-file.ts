// The memory store's replay cache (SPA packet digests, relay nonces), kept across restarts in a
// file next to the state file. Without it, a packet captured before a restart could be replayed
// after it while its timestamp is still inside MAX_SPA_PACKET_AGE, and with fwknop -s the
// replayer would be granted its own address.
//
// The file is a log: one JSON line per claim, appended (O_APPEND, ~10 µs) before the claim
// resolves, so from then on the kernel has it and neither a restart nor a crash of the daemon
// loses it. Durability against a power loss (fdatasync, ~10 ms on a disk) follows in the
// background, coalesced: waiting for it would put a disk flush between every SPA packet and its
// open port; a power loss can cost the last flush interval's entries, and only for a machine back
// up within MAX_SPA_PACKET_AGE. A torn last line is a claim whose write never finished, so its
// packet was never granted: it is skipped; a bad line anywhere else stops the start with
// KGW_STATE_FILE. Bounded: the log is rewritten with the live entries only (at most maxEntries)
// at start and whenever it holds twice as many lines as live entries; claims come only from
// packets that authenticated, so the write rate is that of legitimate requests, never a flood's.
import { closeSync, fdatasync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { describeError, kgwError } from '../../core/errors.ts';
import type { Clock, Logger, NonceStore } from '../../ports.ts';
import { createMemoryNonceStore, nonceKey, type MemoryNonceStore } from '../../kit/nonces-memory.ts';
import type { CorruptStateFile } from './memory.ts';

const Line = z.tuple([z.string(), z.number()]);
/** The log is rewritten once it has this many more lines than live entries (and at least this many). */
const MIN_COMPACT_LINES = 1000;

export interface FileNonceStoreOptions {
  readonly file: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly maxEntries?: number;
  /** As the state file: an unreadable cache stops the start unless it may be moved aside. */
  readonly onCorrupt?: CorruptStateFile;
}

function readLog(file: string): [string, number][] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw kgwError('KGW_STATE_FILE', `cannot read the replay cache ${file}: ${describeError(err)}`, { path: file }, err);
  }
  const lines = text.split('\n');
  // The last piece never ended with a newline: empty, or a write cut short (skipped, see above).
  lines.pop();
  const out: [string, number][] = [];
  lines.forEach((l, i) => {
    let parsed: ReturnType<typeof Line.safeParse> | undefined;
    try {
      parsed = Line.safeParse(JSON.parse(l));
    } catch {
      parsed = undefined;
    }
    if (!parsed?.success) throw kgwError('KGW_STATE_FILE', `the replay cache ${file} is corrupt at line ${i + 1}; fix or move it aside`, { path: file, line: i + 1 });
    out.push(parsed.data);
  });
  return out;
}

export async function createFileNonceStore(opts: FileNonceStoreOptions): Promise<NonceStore & { flush(): Promise<void>; close(): Promise<void> }> {
  const { file, clock, logger } = opts;
  let entries: [string, number][];
  try {
    entries = readLog(file);
  } catch (err) {
    if (opts.onCorrupt !== 'move-aside') throw err;
    const aside = `${file}.corrupt-${clock.now()}`;
    await rename(file, aside).catch((renameErr: unknown) => {
      throw kgwError('KGW_STATE_FILE', `cannot move the corrupt replay cache ${file} aside: ${describeError(renameErr)}`, { path: file }, renameErr);
    });
    logger.error({ event: 'store.replay_corrupt', path: file, movedTo: aside, err: describeError(err) }, `moved the unreadable replay cache aside to ${aside}`);
    entries = [];
  }
  const cache: MemoryNonceStore = createMemoryNonceStore({ clock, restore: entries, ...(opts.maxEntries !== undefined ? { maxEntries: opts.maxEntries } : {}) });
  const tmp = join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
  let fd = -1;
  let lines = 0;

  /** Replaces the log with the live entries (durably: this is the rare, bulk write) and reopens it for appends. */
  const compact = (): void => {
    const live = cache.snapshot();
    const out = openSync(tmp, 'w', 0o600);
    try {
      writeSync(out, live.map((e) => `${JSON.stringify(e)}\n`).join(''));
      fsyncSync(out);
    } finally {
      closeSync(out);
    }
    renameSync(tmp, file);
    const dir = openSync(dirname(file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    if (fd >= 0) closeSync(fd);
    fd = openSync(file, 'a', 0o600);
    lines = live.length;
  };
  try {
    compact();
  } catch (err) {
    throw kgwError('KGW_STATE_FILE', `cannot write the replay cache ${file}: ${describeError(err)}`, { path: file }, err);
  }
  logger.info({ event: 'store.replay_loaded', path: file, entries: cache.size }, `loaded ${cache.size} live replay-cache entries from ${file}`);

  // Durability in the background: one fdatasync in flight; appends during it cause one more.
  let unsynced = false;
  let syncing: Promise<void> | undefined;
  const syncLoop = async (): Promise<void> => {
    while (unsynced && fd >= 0) {
      unsynced = false;
      const target = fd;
      await new Promise<void>((resolve) => fdatasync(target, (err) => {
        if (err) logger.error({ event: 'store.replay_sync_failed', path: file, err: describeError(err) }, `cannot flush the replay cache ${file} to disk: a power loss could forget the newest entries`);
        resolve();
      }));
    }
  };

  const append = (key: string, expiresAt: number): void => {
    try {
      if (lines >= MIN_COMPACT_LINES && lines >= 2 * cache.size) compact();
      else {
        writeSync(fd, `${JSON.stringify([key, expiresAt])}\n`);
        lines++;
      }
      unsynced = true;
      syncing ??= syncLoop().finally(() => (syncing = undefined));
    } catch (err) {
      // The entry still protects this process; only a restart would forget it. Said, not hidden.
      logger.error({ event: 'store.replay_write_failed', path: file, err: describeError(err) }, `cannot write the replay cache ${file}: a restart would forget the newest entries`);
    }
  };

  return {
    async claim(scope, nonce, ttlMs) {
      if (!(await cache.claim(scope, nonce, ttlMs))) return false;
      append(nonceKey(scope, nonce), clock.now() + ttlMs);
      return true;
    },
    async flush() {
      while (syncing) await syncing;
    },
    async close() {
      while (syncing) await syncing;
      if (fd >= 0) {
        fsyncSync(fd);
        closeSync(fd);
        fd = -1;
      }
    },
  };
}
