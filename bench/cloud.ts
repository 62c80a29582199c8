// Phase 5: cloud API calls per grant, counted by the fakes (test/fakes) that speak the real EC2
// and Compute wire protocols, with the real SDKs and createCloudSync in front. Two arrival
// patterns: a burst (100 grants in one reconcile, what the reconciler's coalescing gives when
// knocks arrive together) and a trickle (one reconcile per grant, knocks spaced out), the
// trickle measured after the start-up pass that lists each cloud once (the daemon makes it
// before it is ready; from then on the sync knows what the cloud holds).
import { createAwsCloudFirewall, createGcpCloudFirewall } from '../gateway/adapters/cloud/index.ts';
import { makeGrant, type Grant } from '../gateway/core/grant.ts';
import { createCloudSync } from '../gateway/services/cloud-sync.ts';
import type { CloudFirewall } from '../gateway/ports.ts';
import { systemClock } from '../gateway/ports.ts';
import { startEc2Fake } from '../test/fakes/ec2.ts';
import { startGceFake } from '../test/fakes/gce.ts';
import { useDummyAwsCredentials } from '../test/helpers/cloud.ts';
import { kgwError } from '../gateway/core/errors.ts';
import { onCleanup, round, silentLogger } from './lib.ts';

export type CloudMode = 'aws-prefix' | 'aws-rules' | 'gcp-aggregated' | 'gcp-per-grant';

export interface CloudResult {
  readonly mode: CloudMode;
  readonly grants: number;
  /** Calls for the burst grant, per grant; and for revoking them all in one pass. */
  readonly burstGrantPerGrant: number;
  readonly burstRevokePerGrant: number;
  /** Calls per grant when each grant gets its own reconcile (a knock arriving alone). */
  readonly tricklePerGrant: number;
  /** Calls of the start-up pass before the trickle (the one listing). */
  readonly trickleWarmupCalls: number;
  readonly burstMs: number;
}

const FAST = { baseMs: 5, capMs: 50, maxAttempts: 6, budgetMs: 10_000 };
const PL = 'pl-0123456789abcdef0';
const GROUPS = ['sg-0123456789abcdef0', 'sg-0123456789abcdef1'];

function grants(n: number): Grant[] {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) =>
    makeGrant({ ip: `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`, door: 'openSSH', ports: [{ port: 22, proto: 'tcp' }], source: 'knock', ttlMs: 3_600_000, nodeId: 'bench', now }));
}

interface Target { readonly fw: CloudFirewall; calls(): number; close(): Promise<void> }

const SSH = [{ port: 22, proto: 'tcp' as const }];

async function target(mode: CloudMode): Promise<Target> {
  if (mode === 'gcp-aggregated' || mode === 'gcp-per-grant') {
    const fake = await startGceFake({ operationMs: 5 });
    const fw = await createGcpCloudFirewall({
      config: { project: fake.project, network: 'default', targetTags: ['knockgw'], targetServiceAccounts: [], priority: 900, mode: mode === 'gcp-aggregated' ? 'aggregated' : 'per-grant', endpoint: fake.endpoint },
      logger: silentLogger,
      protectedPorts: SSH,
      retry: FAST,
    });
    return { fw, calls: () => fake.totalCalls(), close: async () => { await fw.close(); await fake.close(); } };
  }
  useDummyAwsCredentials();
  // Two groups: 100 rules do not fit one group's default quota of 60 (rules mode spills).
  const fake = await startEc2Fake({ securityGroups: GROUPS, prefixLists: [{ id: PL, family: 4 }] });
  const fw = await createAwsCloudFirewall({
    config: { region: 'eu-west-1', securityGroupIds: GROUPS, mode: mode === 'aws-prefix' ? 'prefix-list' : 'rules', prefixListId: PL, endpoint: fake.endpoint },
    logger: silentLogger,
    protectedPorts: SSH,
    retry: FAST,
    // The fake settles a change in 20 ms; real AWS takes seconds (the default first look is at 500 ms).
    settlePollMs: 50,
  });
  return { fw, calls: () => fake.totalCalls(), close: async () => { fw.close(); await fake.close(); } };
}

async function measure(mode: CloudMode, n: number): Promise<CloudResult> {
  const all = grants(n);
  const run = async <T>(body: (t: Target, sync: ReturnType<typeof createCloudSync>) => Promise<T>): Promise<T> => {
    const t = await target(mode);
    const drop = onCleanup(`${mode} fake`, () => t.close());
    try {
      return await body(t, createCloudSync({ firewalls: [t.fw], logger: silentLogger, clock: systemClock }));
    } finally {
      drop();
      await t.close();
    }
  };
  const check = (what: string, r: { errors: number }): void => {
    if (r.errors > 0) throw kgwError('KGW_INTERNAL', `bench: ${mode} ${what} had ${r.errors} cloud errors`);
  };
  const burst = await run(async (t, sync) => {
    const t0 = performance.now();
    const g = await sync.reconcile(all);
    const ms = performance.now() - t0;
    check('burst grant', g);
    const afterGrant = t.calls();
    check('burst revoke', await sync.reconcile([]));
    return { grant: afterGrant, revoke: t.calls() - afterGrant, ms };
  });
  const trickle = await run(async (t, sync) => {
    check('start-up pass', await sync.reconcile([]));
    const warmup = t.calls();
    for (let i = 1; i <= n; i++) check('trickle grant', await sync.reconcile(all.slice(0, i)));
    return { warmup, calls: t.calls() - warmup };
  });
  return {
    mode, grants: n, burstGrantPerGrant: round(burst.grant / n, 3), burstRevokePerGrant: round(burst.revoke / n, 3),
    tricklePerGrant: round(trickle.calls / n, 3), trickleWarmupCalls: trickle.warmup, burstMs: round(burst.ms, 1),
  };
}

export async function benchCloud(n: number): Promise<CloudResult[]> {
  const out: CloudResult[] = [];
  for (const mode of ['aws-prefix', 'aws-rules', 'gcp-aggregated', 'gcp-per-grant'] as const) out.push(await measure(mode, n));
  return out;
}
