// AWS security groups: one inbound rule per (grant, port) (cloud-aws-rules.ts), or one
// managed-prefix-list entry per address (cloud-aws-prefix-list.ts). Batched, idempotent, bounded
// retries; every API call goes through `call()` so the action list below is the one source for
// counters and for infra/aws/gateway-iam.json. The adapter also finds rules outside knockgw in
// the configured groups that open a protected port to the whole Internet.
import { z } from 'zod';
import type { PortSpec } from '../../../core/grant.ts';
import type { AwsTarget } from './target.ts';
import { kgwError } from '../../../core/errors.ts';
import type { CloudFirewall, Logger, WorldOpenRule } from '../../../ports.ts';
import { createCaller, hostGrants, openedPorts, parseAnswer, providerCode as awsCode, WORLD_RANGES, type RetryPolicy } from '../common.ts';
import { createPrefixListOps } from './prefix-list.ts';
import { createRuleOps, SgRule } from './rules.ts';
import type { AwsAction } from './actions.ts';
import { loadEc2Sdk } from '../sdk.ts';


const RETRYABLE = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'InternalError', 'InternalFailure', 'ServiceUnavailable', 'Unavailable', 'RequestTimeout', 'TimeoutError']);
const NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED']);

export interface AwsCloudOptions {
  readonly config: AwsTarget;
  readonly logger: Logger;
  /** The ports knockgw protects: a rule outside knockgw opening one of them to the world is reported. */
  readonly protectedPorts: readonly PortSpec[];
  readonly retry?: Partial<RetryPolicy>;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Inbound rules a group holds per family (AWS default 60; raise it if your quota was raised). */
  readonly rulesPerGroup?: number;
  /** Per-request socket timeout (a slow answer is retried like a 5xx). */
  readonly requestTimeoutMs?: number;
  /** Prefix lists: how long after a change the first look at its state comes (default 500 ms, then doubling). */
  readonly settlePollMs?: number;
}

export interface AwsCloudFirewall extends CloudFirewall {
  /** Retries and throttled answers seen so far. */
  stats(): { retries: number; throttled: number };
  close(): void;
}

const DescribeRulesOut = z.object({ SecurityGroupRules: z.array(SgRule).optional(), NextToken: z.string().optional() });

export async function createAwsCloudFirewall(opts: AwsCloudOptions): Promise<AwsCloudFirewall> {
  const { config, logger } = opts;
  const sdk = await loadEc2Sdk();
  // Our own retry policy owns backoff (bounded in time); the SDK's would multiply it.
  const client = new sdk.EC2Client({
    region: config.region,
    maxAttempts: 1,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 10_000, connectionTimeout: 5_000, throwOnRequestTimeout: true },
  });
  const { call, counters, sleep } = createCaller<AwsAction>({
    provider: 'aws', logger, retry: opts.retry, sleep: opts.sleep, classify, isThrottle: (err) => awsCode(err) === 'RequestLimitExceeded',
  });

  function classify(action: string, err: unknown): Error {
    const e = err as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number }; $fault?: unknown };
    const message = typeof e.message === 'string' ? e.message : String(err);
    const status = e.$metadata?.httpStatusCode;
    if (e.$fault === undefined && /Deserialization error|XML parse|char '|Unexpected/.test(message)) {
      return kgwError('KGW_CLOUD_RESPONSE', `EC2 ${action} answered with a body that cannot be parsed`, { action, status, error: message.slice(0, 200) }, err);
    }
    const awsCodeName = typeof e.name === 'string' && e.name !== 'Error' ? e.name : typeof e.code === 'string' ? e.code : 'Unknown';
    const retryable = RETRYABLE.has(awsCodeName) || NETWORK.has(awsCodeName) || (status !== undefined && status >= 500);
    return kgwError('KGW_CLOUD_API', `EC2 ${action} failed: ${awsCodeName}: ${message}`, { action, providerCode: awsCodeName, status, retryable }, err);
  }

  async function describeRules(filters: { Name: string; Values: string[] }[]): Promise<SgRule[]> {
    const out: SgRule[] = [];
    let token: string | undefined;
    do {
      const page = parseAnswer(DescribeRulesOut, 'EC2 DescribeSecurityGroupRules', await call('DescribeSecurityGroupRules', () =>
        client.send(new sdk.DescribeSecurityGroupRulesCommand({ Filters: filters, MaxResults: 1000, ...(token ? { NextToken: token } : {}) }))));
      out.push(...(page.SecurityGroupRules ?? []));
      token = page.NextToken;
    } while (token);
    return out;
  }

  /** An inbound rule of a configured group open to 0.0.0.0/0 or ::/0 on a protected port. */
  function worldOpen(r: SgRule): WorldOpenRule | undefined {
    const source = [r.CidrIpv4, r.CidrIpv6].find((c) => c !== undefined && WORLD_RANGES.includes(c));
    if (r.IsEgress === true || !source) return undefined;
    const everyPort = r.FromPort === undefined || r.FromPort === -1;
    const ports = openedPorts(opts.protectedPorts, r.IpProtocol, everyPort ? undefined : [{ from: r.FromPort ?? 0, to: r.ToPort ?? r.FromPort ?? 0 }]);
    if (ports.length === 0) return undefined;
    return {
      provider: 'aws',
      rule: r.SecurityGroupRuleId,
      where: `security group ${r.GroupId}`,
      source,
      ports,
      removeCommand: `aws ec2 revoke-security-group-ingress --group-id ${r.GroupId} --security-group-rule-ids ${r.SecurityGroupRuleId} --region ${config.region}`,
    };
  }

  const mode = config.mode === 'prefix-list'
    ? createPrefixListOps({ sdk, client, call, config, logger, sleep, settlePollMs: opts.settlePollMs ?? 500 })
    : createRuleOps({ sdk, client, call, describeRules, config, logger, rulesPerGroup: opts.rulesPerGroup ?? 60 });

  return {
    name: 'aws',
    keyedBy: config.mode === 'prefix-list' ? 'ip' : 'grant',
    async grant(grants) {
      const hgs = hostGrants(grants, { needPorts: config.mode === 'rules' });
      return hgs.length === 0 ? [] : mode.grant(hgs);
    },
    async revoke(grants, rules) {
      if (grants.length > 0) await mode.revoke(grants, rules);
    },
    list: () => mode.list(),
    async worldOpen() {
      const rules = await describeRules([{ Name: 'group-id', Values: [...config.securityGroupIds] }]);
      return rules.map(worldOpen).filter((f): f is WorldOpenRule => f !== undefined);
    },
    apiCalls: () => ({ ...counters.calls }),
    stats: () => ({ retries: counters.retries, throttled: counters.throttled }),
    close: () => client.destroy(),
  };
}
