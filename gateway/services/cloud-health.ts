// What `status` says about each cloud firewall: whether its last calls worked, when it was last
// listed, how many writes a failed pass left undone and the world-open rules of the last sweep.
// Kept beside cloud-sync (which feeds it) so the status contract does not grow the sync loop.
import type { Clock } from '../ports.ts';

export const CLOUD_STATES = ['unknown', 'ok', 'failing', 'follower'] as const;
export type CloudState = (typeof CLOUD_STATES)[number];

export interface CloudHealth {
  readonly name: string;
  /** unknown: no pass yet; follower: another node holds the cloud lease; failing: the last call failed. */
  readonly state: CloudState;
  readonly since: string | null;
  readonly lastListedAt: string | null;
  /** Grants and revocations the last pass could not write (retried by the next one). */
  readonly pendingWrites: number;
  readonly worldOpenRules: number;
  readonly lastError: { readonly op: string; readonly code: string; readonly at: string } | null;
}

export interface CloudHealthBook {
  listed(name: string): void;
  failed(name: string, op: string, code: string): void;
  /** Writes a pass wanted on this provider and could not make. */
  pending(name: string, count: number): void;
  /** A pass on this provider ended with `errors` failed calls. */
  settled(name: string, errors: number): void;
  worldOpen(name: string, count: number): void;
  leader(isLeader: boolean): void;
  snapshot(): CloudHealth[];
}

interface Entry { state: CloudState; since: number | null; listedAt: number | null; pending: number; worldOpen: number; lastError: { op: string; code: string; at: number } | null }

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function createCloudHealth(names: readonly string[], clock: Clock): CloudHealthBook {
  const entries = new Map<string, Entry>(names.map((n) => [n, { state: 'unknown', since: null, listedAt: null, pending: 0, worldOpen: 0, lastError: null }]));
  const move = (e: Entry, state: CloudState): void => {
    if (e.state !== state) {
      e.state = state;
      e.since = clock.now();
    }
  };
  const each = (name: string, f: (e: Entry) => void): void => {
    const e = entries.get(name);
    if (e) f(e);
  };
  return {
    listed: (name) => each(name, (e) => (e.listedAt = clock.now())),
    failed: (name, op, code) => each(name, (e) => (e.lastError = { op, code, at: clock.now() })),
    pending: (name, count) => each(name, (e) => (e.pending = count)),
    settled: (name, errors) => each(name, (e) => move(e, errors > 0 ? 'failing' : 'ok')),
    worldOpen: (name, count) => each(name, (e) => (e.worldOpen = count)),
    leader: (isLeader) => {
      for (const e of entries.values()) if (!isLeader) move(e, 'follower');
      else if (e.state === 'follower') move(e, 'unknown');
    },
    snapshot: () => [...entries].map(([name, e]) => ({
      name, state: e.state, since: iso(e.since), lastListedAt: iso(e.listedAt), pendingWrites: e.pending, worldOpenRules: e.worldOpen,
      lastError: e.lastError ? { op: e.lastError.op, code: e.lastError.code, at: new Date(e.lastError.at).toISOString() } : null,
    })),
  };
}
