// A HostFirewall in memory that records every op it is asked to apply, with a timestamp that
// compares across processes (the fleet bench hosts nodes in several child processes and measures
// from a grant in one to the change applied in all). It holds its entries like an nftables set
// with timeouts: an entry past its expiry no longer lets its address in and is no longer listed,
// whether or not a remove came (the reconciler sends none for what the kernel expires itself).
import { entryKey } from '../../gateway/core/plan.ts';
import { kgwError } from '../../gateway/core/errors.ts';
import type { FirewallEntry, FirewallOp } from '../../gateway/core/types.ts';
import type { HostFirewall } from '../../gateway/ports.ts';

/** Milliseconds since the epoch with sub-millisecond resolution, the same clock in every process of this machine. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

export interface RecordedOp { readonly at: number; readonly op: 'add' | 'remove'; readonly ip: string; readonly port: number }

export interface RecordingFirewall extends HostFirewall {
  /** Entries added and not removed (or listed away after their expiry): O(1), for waits. */
  readonly size: number;
  /** True while an unexpired entry lets the address in. */
  holds(ip: string): boolean;
  /** When an add for this address was last applied, or undefined. */
  openedAt(ip: string): number | undefined;
  /** When the address stopped being let in: its last remove, or its entries' expiry; undefined while held. */
  closedAt(ip: string): number | undefined;
  /** Every op applied since the last forget(), oldest first. */
  readonly ops: readonly RecordedOp[];
  /** Drops the op log and the per-address times (between bench phases); entries stay. */
  forget(): void;
  /** Resolves once `cond()` holds after an apply (or at once); rejects after timeoutMs. */
  until(cond: () => boolean, timeoutMs: number, what: string): Promise<number>;
}

export function createRecordingFirewall(opts: { log?: boolean } = {}): RecordingFirewall {
  const entries = new Map<string, FirewallEntry>();
  /** address → its entries' keys. */
  const byIp = new Map<string, Set<string>>();
  const last = { add: new Map<string, number>(), remove: new Map<string, number>() };
  let ops: RecordedOp[] = [];
  const waiters = new Set<() => void>();

  const live = (e: FirewallEntry | undefined, now: number): boolean => e !== undefined && (e.expiresAt === null || e.expiresAt > now);
  const entriesOf = (ip: string): FirewallEntry[] => [...(byIp.get(ip) ?? [])].flatMap((k) => entries.get(k) ?? []);
  const drop = (key: string, ip: string): void => {
    entries.delete(key);
    const keys = byIp.get(ip);
    keys?.delete(key);
    if (keys?.size === 0) byIp.delete(ip);
  };
  const holds = (ip: string): boolean => entriesOf(ip).some((e) => live(e, wallNow()));

  return {
    name: 'none',
    get size() {
      return entries.size;
    },
    get ops() {
      return ops;
    },
    ensureBase: () => Promise.resolve(),
    apply(batch: readonly FirewallOp[]) {
      const at = wallNow();
      for (const o of batch) {
        const key = entryKey(o.entry);
        if (o.op === 'add') {
          entries.set(key, o.entry);
          let keys = byIp.get(o.entry.ip);
          if (!keys) byIp.set(o.entry.ip, (keys = new Set()));
          keys.add(key);
        } else {
          drop(key, o.entry.ip);
        }
        last[o.op].set(o.entry.ip, at);
        if (opts.log !== false) ops.push({ at, op: o.op, ip: o.entry.ip, port: o.entry.port });
      }
      for (const w of waiters) w();
      return Promise.resolve();
    },
    list() {
      // The kernel forgets a timed-out element; so does this list.
      const now = wallNow();
      for (const [key, e] of [...entries]) {
        if (live(e, now)) continue;
        drop(key, e.ip);
        // It closed when it timed out: keep that for closedAt().
        last.remove.set(e.ip, Math.max(last.remove.get(e.ip) ?? 0, e.expiresAt ?? now));
      }
      return Promise.resolve([...entries.values()]);
    },
    teardown() {
      entries.clear();
      byIp.clear();
      return Promise.resolve();
    },
    holds,
    openedAt: (ip) => last.add.get(ip),
    closedAt(ip) {
      if (holds(ip)) return undefined;
      const expired = entriesOf(ip).map((e) => e.expiresAt ?? 0);
      const removed = last.remove.get(ip);
      if (expired.length === 0) return removed;
      return Math.max(removed ?? 0, ...expired);
    },
    forget() {
      ops = [];
      last.add.clear();
      last.remove.clear();
    },
    until(cond, timeoutMs, what) {
      const start = wallNow();
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!cond()) return;
          done();
          resolve(wallNow() - start);
        };
        const timer = setTimeout(() => {
          done();
          reject(kgwError('KGW_INTERNAL', `recording firewall: ${what} not within ${timeoutMs} ms`, { what, timeoutMs }));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
