// The kernel engine completes knocks by itself and reports each one on NFLOG; a report can be
// lost (a full netlink buffer). The rule is: no grant may live in the kernel that the store does
// not have, and no grant the kernel closed may stay open in the store. This decides, from the
// kernel's own record of recent completions (its done sets), which reports were lost. Pure.
//
// Adopting is safe because only a kernel completion puts a source in a done set, and the done set
// also says which sequence (so which door) and when. A completion is left alone when:
//   - it happened before the reader started (a daemon restart: the store may since have been
//     revoked elsewhere, so the repair removes it instead — the client knocks again);
//   - the gateway saw its grant change after it (the report did arrive, and a revoke or close
//     followed);
//   - the store already agrees.
import type { FirewallEntry, KernelCompletion, KnockSequence, Door, Proof } from './types.ts';
import { grantId, type Grant } from './grant.ts';

export interface RepairInput {
  readonly completions: readonly KernelCompletion[];
  /** The config's sequences (a completion names an index into this list). */
  readonly sequences: readonly KnockSequence[];
  readonly doors: ReadonlyMap<string, Door>;
  /** Live grants in the store. */
  readonly grants: readonly Grant[];
  /** What the kernel's allowed sets hold now. */
  readonly allowed: readonly FirewallEntry[];
  /** Completions before this (ms) are not repaired. */
  readonly since: number;
  /** When the gateway last saw this grant id put or removed, if it did. */
  readonly lastChange: (id: string) => number | undefined;
}

type KnockProof = Extract<Proof, { kind: 'knock' }>;

/** nft reports a done element's expiry in whole seconds, so a completion time may be this early. */
const KERNEL_RESOLUTION_MS = 1000;

export function lostReports(input: RepairInput): KnockProof[] {
  const live = new Map(input.grants.map((g) => [g.id, g]));
  const held = new Set(input.allowed.map((e) => `${e.ip}|${e.proto}|${e.port}`));
  const out: KnockProof[] = [];
  for (const c of input.completions) {
    const seq = input.sequences[c.sequenceIndex];
    const door = seq ? input.doors.get(seq.door) : undefined;
    // Rounded down to the second: a knock just after the reader started can read as just before.
    if (!seq || !door || c.completedAt + KERNEL_RESOLUTION_MS <= input.since) continue;
    const id = grantId(door.name, c.ip);
    const changed = input.lastChange(id);
    // Whole seconds on the kernel's side: a change within a second of the completion is its own.
    if (changed !== undefined && changed >= c.completedAt - KERNEL_RESOLUTION_MS) continue;
    const inKernel = door.open.length > 0 && door.open.every((p) => held.has(`${c.ip}|${p.proto}|${p.port}`));
    const grant = live.get(id);
    const proof = { kind: 'knock', engine: 'kernel', sequenceId: seq.id, door: door.name, ip: c.ip, family: c.family, adopted: { completedAt: c.completedAt } } as const;
    if (seq.action.kind === 'open' && !grant && inKernel) out.push({ ...proof, action: { kind: 'open' } });
    if (seq.action.kind === 'close' && grant && !inKernel && lastRenewal(grant, door) < c.completedAt) out.push({ ...proof, action: { kind: 'close' } });
  }
  return out;
}

/** When a grant was last opened or extended, as far as its expiry tells. */
function lastRenewal(g: Grant, door: Door): number {
  return g.expiresAt !== null && door.ttlMs > 0 ? g.expiresAt - door.ttlMs : g.createdAt;
}
