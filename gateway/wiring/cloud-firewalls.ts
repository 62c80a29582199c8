// The cloud adapters `cloud:` configures, built in one place (the daemon's cloud runtime and
// `doctor` both use it), and the world-open check `doctor` runs: every configured cloud
// inspected once for rules that open a protected port to the whole Internet.
import { createAwsCloudFirewall, createGcpCloudFirewall } from '../adapters/cloud/index.ts';
import type { AwsTarget, GcpTarget, RetryPolicy } from '../adapters/cloud/index.ts';
import type { AwsCloudConfig, Config, GcpCloudConfig } from '../config/types.ts';
import { describeError, isKnockgwError } from '../core/errors.ts';
import type { CloudFirewall, Logger, WorldOpenRule } from '../ports.ts';

export type ClosableCloudFirewall = CloudFirewall & { close(): unknown };

/** `cloud.aws` as the AWS adapters take it (the one place that knows both shapes). */
export function awsTarget(c: AwsCloudConfig): AwsTarget {
  return {
    region: c.region, securityGroupIds: c.securityGroupIds, mode: c.mode,
    ...(c.prefixListId !== undefined ? { prefixListId: c.prefixListId } : {}),
    ...(c.prefixListIdV6 !== undefined ? { prefixListIdV6: c.prefixListIdV6 } : {}),
    ...(c.endpoint !== undefined ? { endpoint: c.endpoint } : {}),
  };
}

/** `cloud.gcp` as the GCP adapters take it. */
export function gcpTarget(c: GcpCloudConfig): GcpTarget {
  return {
    project: c.project, network: c.network, targetTags: c.targetTags, targetServiceAccounts: c.targetServiceAccounts,
    priority: c.priority, mode: c.mode, ...(c.endpoint !== undefined ? { endpoint: c.endpoint } : {}),
  };
}

/**
 * The configured adapters, told which ports knockgw protects (for the world-open check). Each
 * loads its cloud's SDK, so only the clouds the config names cost start-up time and memory.
 */
export async function createCloudFirewalls(config: Config, logger: Logger, opts: { retry?: Partial<RetryPolicy>; requestTimeoutMs?: number } = {}): Promise<ClosableCloudFirewall[]> {
  const { aws, gcp } = config.cloud;
  const common = { logger, protectedPorts: config.protectedPorts, ...opts };
  const made = await Promise.allSettled([
    ...(aws ? [createAwsCloudFirewall({ config: awsTarget(aws), ...common })] : []),
    ...(gcp ? [createGcpCloudFirewall({ config: gcpTarget(gcp), ...common })] : []),
  ]);
  const firewalls = made.flatMap((m) => (m.status === 'fulfilled' ? [m.value] : []));
  const failed = made.find((m) => m.status === 'rejected');
  if (failed) {
    for (const fw of firewalls) await fw.close();
    throw failed.reason;
  }
  return firewalls;
}

export interface WorldOpenCheck {
  readonly findings: WorldOpenRule[];
  /** Providers that could not be inspected (credentials, network, permissions), and why. */
  readonly failures: { provider: string; error: string }[];
}

/** What `doctor` calls: every configured cloud inspected once, with short retries. */
export async function checkWorldOpen(config: Config, logger: Logger): Promise<WorldOpenCheck> {
  const out: WorldOpenCheck = { findings: [], failures: [] };
  let firewalls: ClosableCloudFirewall[];
  try {
    firewalls = await createCloudFirewalls(config, logger, { retry: { maxAttempts: 2, budgetMs: 5_000 }, requestTimeoutMs: 5_000 });
  } catch (err) {
    // A cloud SDK that is not installed (KGW_CLOUD_SDK) or a GCP target that is not valid.
    const cloud = isKnockgwError(err) && typeof err.detail.cloud === 'string' ? err.detail.cloud : 'cloud';
    out.failures.push({ provider: cloud, error: describeError(err) });
    return out;
  }
  try {
    for (const fw of firewalls) {
      try {
        out.findings.push(...((await fw.worldOpen?.()) ?? []));
      } catch (err) {
        out.failures.push({ provider: fw.name, error: describeError(err) });
      }
    }
  } finally {
    for (const fw of firewalls) await fw.close();
  }
  return out;
}
