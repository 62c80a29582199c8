// The cloud adapters `cloud:` configures, built in one place (the daemon's cloud runtime and
// `doctor` both use it), and the world-open check `doctor` runs: every configured cloud
// inspected once for rules that open a protected port to the whole Internet.
import { createAwsCloudFirewall, createGcpCloudFirewall } from '../adapters/cloud/index.ts';
import type { AwsTarget, GcpTarget, RetryPolicy } from '../adapters/cloud/index.ts';
import type { AwsCloudConfig, Config, GcpCloudConfig } from '../config/types.ts';
import { describeError } from '../core/errors.ts';
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

/** The configured adapters, told which ports knockgw protects (for the world-open check). */
export function createCloudFirewalls(config: Config, logger: Logger, opts: { retry?: Partial<RetryPolicy>; requestTimeoutMs?: number } = {}): ClosableCloudFirewall[] {
  const { aws, gcp } = config.cloud;
  const common = { logger, protectedPorts: config.protectedPorts, ...opts };
  return [
    ...(aws ? [createAwsCloudFirewall({ config: awsTarget(aws), ...common })] : []),
    ...(gcp ? [createGcpCloudFirewall({ config: gcpTarget(gcp), ...common })] : []),
  ];
}

export interface WorldOpenCheck {
  readonly findings: WorldOpenRule[];
  /** Providers that could not be inspected (credentials, network, permissions), and why. */
  readonly failures: { provider: string; error: string }[];
}

/** What `doctor` calls: every configured cloud inspected once, with short retries. */
export async function checkWorldOpen(config: Config, logger: Logger): Promise<WorldOpenCheck> {
  const out: WorldOpenCheck = { findings: [], failures: [] };
  const firewalls = createCloudFirewalls(config, logger, { retry: { maxAttempts: 2, budgetMs: 5_000 }, requestTimeoutMs: 5_000 });
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
