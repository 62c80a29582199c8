// AWS managed prefix lists: one entry per address (≤ 100 changes per call), optimistic
// concurrency on CurrentVersion, and a wait for the asynchronous modify to settle. Scales to
// thousands of addresses where security-group rules stop at 60 per family. A knock alone costs
// the change and one look at its state: the list's contents and version are kept from the last
// read or change.
import type { EC2Client } from '@aws-sdk/client-ec2';
import { z } from 'zod';
import { backoffDelay, type Backoff } from '../../../core/backoff.ts';
import type { Family } from '../../../core/ip.ts';
import type { Grant } from '../../../core/grant.ts';
import type { AwsTarget } from './target.ts';
import { kgwError } from '../../../core/errors.ts';
import type { CloudRule, Logger } from '../../../ports.ts';
import { assertHostCidr, decodeMeta, encodeMeta, hostGrants, parseAnswer, providerCode, type HostGrant } from '../common.ts';
import type { AwsAction } from './actions.ts';
import type { Ec2Sdk } from '../sdk.ts';

const MAX_CHANGES_PER_CALL = 100;
const MAX_CONFLICTS = 6;
/** Between re-reads after a version conflict: full jitter, so racing writers spread out. */
const CONFLICT_BACKOFF: Backoff = { baseMs: 100, capMs: 3_200, jitter: 'full' };
const STALE_SNAPSHOT = new Set(['PrefixListVersionMismatch', 'IncorrectState', 'PrefixListMaxEntriesExceeded']);
/** Polls of DescribeManagedPrefixLists while a change settles (backoff up to 2 s, ~60 s in all). */
const MAX_POLLS = 35;

const PrefixList = z.object({
  PrefixListId: z.string(),
  AddressFamily: z.string().optional(),
  State: z.string(),
  StateMessage: z.string().optional(),
  MaxEntries: z.number(),
  Version: z.number(),
});
const DescribeOut = z.object({ PrefixLists: z.array(PrefixList).optional() });
const EntriesOut = z.object({ Entries: z.array(z.object({ Cidr: z.string(), Description: z.string().optional() })).optional(), NextToken: z.string().optional() });

interface Snapshot { version: number; maxEntries: number; entries: Map<string, string> }
interface Change { readonly add: { Cidr: string; Description: string }[]; readonly remove: { Cidr: string }[] }

export interface PrefixListDeps {
  readonly sdk: Ec2Sdk;
  readonly client: EC2Client;
  readonly call: <T>(action: AwsAction, send: () => Promise<T>) => Promise<T>;
  readonly config: AwsTarget;
  readonly logger: Logger;
  readonly sleep: (ms: number) => Promise<void>;
  /** First look at a list's state after our own change (a change takes a moment to settle). */
  readonly settlePollMs: number;
}

export function createPrefixListOps(deps: PrefixListDeps): {
  grant(hgs: readonly HostGrant[]): Promise<CloudRule[]>;
  revoke(grants: readonly Grant[]): Promise<void>;
  list(): Promise<CloudRule[]>;
} {
  const { sdk, client, call, config, logger, sleep } = deps;
  /**
   * What each list held after our last read or change, with its version: a knock then costs the
   * change and one look at its state, not a full read first. A conflict (someone else changed the
   * list) drops it and re-reads; the periodic listing refreshes it.
   */
  const snapshots = new Map<string, Snapshot>();
  const listIds = (): { id: string; family: Family }[] => [
    ...(config.prefixListId ? [{ id: config.prefixListId, family: 4 as const }] : []),
    ...(config.prefixListIdV6 ? [{ id: config.prefixListIdV6, family: 6 as const }] : []),
  ];

  function listFor(family: Family): string {
    const id = family === 4 ? config.prefixListId : config.prefixListIdV6;
    if (!id) throw kgwError('KGW_CLOUD_REFUSED', `no prefix list configured for IPv${family} grants: set aws.${family === 4 ? 'prefixListId' : 'prefixListIdV6'}`, { family });
    return id;
  }

  async function describe(id: string): Promise<z.infer<typeof PrefixList>> {
    const out = parseAnswer(DescribeOut, 'EC2 DescribeManagedPrefixLists', await call('DescribeManagedPrefixLists', () =>
      client.send(new sdk.DescribeManagedPrefixListsCommand({ PrefixListIds: [id] }))));
    const pl = out.PrefixLists?.find((p) => p.PrefixListId === id);
    if (!pl) throw kgwError('KGW_CLOUD_RESPONSE', `DescribeManagedPrefixLists did not return ${id}`, { prefixListId: id });
    return pl;
  }

  /**
   * Waits until no change is in progress; a failed change is an error (its StateMessage says
   * why). After our own change the first look waits `settlePollMs`: looking at once only ever
   * sees it in progress.
   */
  async function settled(id: string, afterChange: boolean): Promise<z.infer<typeof PrefixList>> {
    if (afterChange) await sleep(deps.settlePollMs);
    for (let i = 0; i < MAX_POLLS; i++) {
      const pl = await describe(id);
      if (pl.State.endsWith('-failed')) {
        throw kgwError('KGW_CLOUD_API', `prefix list ${id} is in state ${pl.State}: ${pl.StateMessage ?? 'no reason given'}`, { prefixListId: id, state: pl.State });
      }
      if (!pl.State.endsWith('-in-progress')) return pl;
      await sleep(Math.min(2_000, Math.max(100, deps.settlePollMs) * 2 ** i));
    }
    throw kgwError('KGW_CLOUD_API', `prefix list ${id} did not settle in time`, { prefixListId: id });
  }

  async function entries(id: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let token: string | undefined;
    do {
      const page = parseAnswer(EntriesOut, 'EC2 GetManagedPrefixListEntries', await call('GetManagedPrefixListEntries', () =>
        client.send(new sdk.GetManagedPrefixListEntriesCommand({ PrefixListId: id, MaxResults: 1000, ...(token ? { NextToken: token } : {}) }))));
      for (const e of page.Entries ?? []) out.set(e.Cidr, e.Description ?? '');
      token = page.NextToken;
    } while (token);
    return out;
  }

  async function read(id: string): Promise<Snapshot> {
    const pl = await settled(id, false);
    const snap = { version: pl.Version, maxEntries: pl.MaxEntries, entries: await entries(id) };
    snapshots.set(id, snap);
    return snap;
  }

  /** Applies what `plan` wants against the last snapshot; a concurrent change re-reads and re-plans. */
  async function modify(id: string, plan: (snap: Snapshot) => Change): Promise<void> {
    for (let conflicts = 0; ; conflicts++) {
      const snap = snapshots.get(id) ?? (await read(id));
      const change = plan(snap);
      const n = Math.max(change.add.length, change.remove.length);
      try {
        for (let i = 0; i < n; i += MAX_CHANGES_PER_CALL) {
          const add = change.add.slice(i, i + MAX_CHANGES_PER_CALL);
          const remove = change.remove.slice(i, i + MAX_CHANGES_PER_CALL);
          await call('ModifyManagedPrefixList', () => client.send(new sdk.ModifyManagedPrefixListCommand({
            PrefixListId: id,
            CurrentVersion: snap.version,
            ...(add.length ? { AddEntries: add } : {}),
            ...(remove.length ? { RemoveEntries: remove } : {}),
          })));
          snap.version = (await settled(id, true)).Version;
          for (const r of remove) snap.entries.delete(r.Cidr);
          for (const a of add) snap.entries.set(a.Cidr, a.Description);
        }
        return;
      } catch (err) {
        snapshots.delete(id);
        // Our snapshot was stale: someone changed the list (its version, its state, or its size).
        const code = providerCode(err);
        if (!STALE_SNAPSHOT.has(code ?? '') || conflicts >= MAX_CONFLICTS) throw err;
        logger.info({ event: 'cloud.conflict', provider: 'aws', prefixListId: id, code, attempt: conflicts + 1 }, 'prefix list changed under us: re-reading');
        await sleep(backoffDelay(CONFLICT_BACKOFF, conflicts + 1));
      }
    }
  }

  const byList = <T>(hgs: readonly HostGrant[], value: (hg: HostGrant) => T): Map<string, T[]> => {
    const out = new Map<string, T[]>();
    for (const hg of hgs) {
      const id = listFor(hg.family);
      out.set(id, [...(out.get(id) ?? []), value(hg)]);
    }
    return out;
  };

  return {
    async grant(hgs) {
      let refused: string[] = [];
      for (const [id, group] of byList(hgs, (hg) => hg)) {
        await modify(id, (snap) => {
          const seen = new Set(snap.entries.keys());
          const add: Change['add'] = [];
          for (const hg of group) {
            if (seen.has(hg.cidr)) continue;
            seen.add(hg.cidr);
            add.push({ Cidr: assertHostCidr(hg.cidr), Description: encodeMeta(hg.grant.id, hg.grant.expiresAt) });
          }
          const room = Math.max(0, snap.maxEntries - snap.entries.size);
          refused = add.slice(room).map((a) => a.Cidr);
          return { add: add.slice(0, room), remove: [] };
        });
        if (refused.length > 0) {
          logger.error({ event: 'cloud.quota', provider: 'aws', prefixListId: id, refused: refused.length }, `prefix list ${id} is full: raise its MaxEntries (each security group that references it counts MaxEntries rules)`);
          throw kgwError('KGW_CLOUD_QUOTA', `prefix list ${id} has no room for ${refused.length} more address(es)`, { prefixListId: id, refused });
        }
      }
      return hgs.map((hg) => ({ key: `${listFor(hg.family)}/${hg.cidr}`, grantId: hg.grant.id, ip: hg.grant.ip, expiresAt: hg.grant.expiresAt }));
    },
    async revoke(grants) {
      for (const [id, cidrs] of byList(hostGrants(grants, { needPorts: false }), (hg) => hg.cidr)) {
        // Only entries knockgw wrote: a hand-made entry for the same address is left alone.
        await modify(id, (snap) => ({ add: [], remove: [...new Set(cidrs)].filter((c) => decodeMeta(snap.entries.get(c)) !== undefined).map((Cidr) => ({ Cidr })) }));
      }
    },
    async list() {
      const out: CloudRule[] = [];
      for (const { id } of listIds()) {
        for (const [cidr, description] of (await read(id)).entries) {
          const meta = decodeMeta(description);
          if (meta) out.push({ key: `${id}/${cidr}`, grantId: meta.grantId, ip: cidr.slice(0, cidr.indexOf('/')), expiresAt: meta.expiresAt });
        }
      }
      return out;
    },
  };
}
