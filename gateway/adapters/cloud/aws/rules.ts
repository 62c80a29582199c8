// AWS rules mode: one security-group inbound rule per (grant, port), several grants per
// Authorize call, spilling to the next configured group when one is full. A knock costs one
// Authorize: nothing is listed first (the caller sends only what is missing, and a rule that is
// there already answers InvalidPermission.Duplicate, handled below), and a revoke names the rule
// ids the caller already holds.
import type { EC2Client, IpPermission } from '@aws-sdk/client-ec2';
import { z } from 'zod';
import type { Family } from '../../../core/ip.ts';
import type { Grant } from '../../../core/grant.ts';
import type { AwsTarget } from './target.ts';
import { kgwError } from '../../../core/errors.ts';
import type { CloudRule, Logger } from '../../../ports.ts';
import { assertHostCidr, chunk, decodeMeta, encodeMeta, expiryText, laterExpiry, parseAnswer, providerCode as awsCode, type HostGrant } from '../common.ts';
import { TAG_EXPIRES, TAG_GRANT, type AwsAction } from './actions.ts';
import type { Ec2Sdk } from '../sdk.ts';

/** Rules per Authorize call: keeps one call well under the 60-rule group quota and the request size. */
const RULES_PER_CALL = 50;

export const SgRule = z.object({
  SecurityGroupRuleId: z.string(),
  GroupId: z.string(),
  IsEgress: z.boolean().optional(),
  IpProtocol: z.string(),
  FromPort: z.number().optional(),
  ToPort: z.number().optional(),
  CidrIpv4: z.string().optional(),
  CidrIpv6: z.string().optional(),
  Description: z.string().optional(),
  Tags: z.array(z.object({ Key: z.string().optional(), Value: z.string().optional() })).optional(),
});
export type SgRule = z.infer<typeof SgRule>;
const AuthorizeOut = z.object({ SecurityGroupRules: z.array(SgRule).optional() });

interface RuleSpec { readonly hg: HostGrant; readonly port: number; readonly proto: 'tcp' | 'udp' }

export interface RuleOpsDeps {
  readonly sdk: Ec2Sdk;
  readonly client: EC2Client;
  readonly call: <T>(action: AwsAction, send: () => Promise<T>) => Promise<T>;
  readonly describeRules: (filters: { Name: string; Values: string[] }[]) => Promise<SgRule[]>;
  readonly config: AwsTarget;
  readonly logger: Logger;
  readonly rulesPerGroup: number;
}

/** The rule as the sync sees it; the key names the group too (Revoke needs both). */
export function toCloudRule(r: SgRule): CloudRule | undefined {
  const cidr = r.CidrIpv4 ?? r.CidrIpv6;
  const tags = new Map((r.Tags ?? []).map((t) => [t.Key, t.Value]));
  const meta = decodeMeta(r.Description) ?? (tags.get(TAG_GRANT) ? { grantId: tags.get(TAG_GRANT) ?? '', expiresAt: null } : undefined);
  if (!cidr || !meta) return undefined;
  return { key: `${r.GroupId}/${r.SecurityGroupRuleId}`, grantId: meta.grantId, ip: cidr.slice(0, cidr.indexOf('/')), expiresAt: meta.expiresAt };
}

const ruleKey = (groupId: string, cidr: string, proto: string, port: number | undefined): string => `${groupId}|${cidr}|${proto}|${port}`;
const owned = (rules: readonly SgRule[]): CloudRule[] => rules.map(toCloudRule).filter((r): r is CloudRule => r !== undefined);

export function createRuleOps(deps: RuleOpsDeps): {
  grant(hgs: readonly HostGrant[]): Promise<CloudRule[]>;
  revoke(grants: readonly Grant[], rules: readonly CloudRule[] | undefined): Promise<void>;
  list(): Promise<CloudRule[]>;
} {
  const { sdk, client, call, describeRules, config, logger, rulesPerGroup } = deps;
  /**
   * `group|family` pairs found full: later knocks go straight to the next group instead of paying
   * a refused Authorize and a count each. Forgotten when knockgw frees room there, and on listing.
   */
  const full = new Set<string>();

  const ownedRules = async (): Promise<SgRule[]> =>
    (await describeRules([{ Name: 'tag-key', Values: [TAG_GRANT] }, { Name: 'group-id', Values: [...config.securityGroupIds] }])).filter((r) => r.IsEgress !== true);

  /** One Authorize call: IpPermissions grouped by port, every range a checked single host. */
  async function authorize(groupId: string, specs: readonly RuleSpec[]): Promise<CloudRule[]> {
    const perms = new Map<string, IpPermission>();
    for (const s of specs) {
      const k = `${s.proto}/${s.port}`;
      const perm = perms.get(k) ?? { IpProtocol: s.proto, FromPort: s.port, ToPort: s.port, IpRanges: [], Ipv6Ranges: [] };
      const Description = encodeMeta(s.hg.grant.id, s.hg.grant.expiresAt);
      if (s.hg.family === 4) perm.IpRanges?.push({ CidrIp: assertHostCidr(s.hg.cidr), Description });
      else perm.Ipv6Ranges?.push({ CidrIpv6: assertHostCidr(s.hg.cidr), Description });
      perms.set(k, perm);
    }
    const ids = [...new Set(specs.map((s) => s.hg.grant.id))];
    // EC2 puts a call's tags on every rule it creates; the exact per-rule grant and expiry are
    // in each rule's Description, the tags mark ownership (and name the grant when it is alone).
    const latest = specs.map((s) => s.hg.grant.expiresAt).reduce(laterExpiry);
    const grantTag = ids.join(',').length <= 256 ? ids.join(',') : `batch of ${ids.length}`;
    const out = await call('AuthorizeSecurityGroupIngress', () => client.send(new sdk.AuthorizeSecurityGroupIngressCommand({
      GroupId: groupId,
      IpPermissions: [...perms.values()],
      TagSpecifications: [{ ResourceType: 'security-group-rule', Tags: [{ Key: TAG_GRANT, Value: grantTag }, { Key: TAG_EXPIRES, Value: expiryText(latest) }] }],
    })));
    return owned(parseAnswer(AuthorizeOut, 'EC2 AuthorizeSecurityGroupIngress', out).SecurityGroupRules ?? []);
  }

  /** Authorizes what it can in one group: what it created, and the specs that did not fit (quota). */
  async function fill(groupId: string, specs: RuleSpec[], depth = 0): Promise<{ created: CloudRule[]; over: RuleSpec[] }> {
    if (specs.length === 0) return { created: [], over: [] };
    try {
      return { created: await authorize(groupId, specs), over: [] };
    } catch (err) {
      const code = awsCode(err);
      if (code === 'RulesPerSecurityGroupLimitExceeded') {
        if (specs.length === 1) return { created: [], over: specs };
        // Count what the group holds (everyone's rules count), send what fits; bisect only when
        // the quota turns out higher than we assumed.
        const family = specs[0]?.hg.family;
        const used = (await describeRules([{ Name: 'group-id', Values: [groupId] }]))
          .filter((r) => r.IsEgress !== true && (family === 4 ? r.CidrIpv4 : r.CidrIpv6) !== undefined).length;
        const room = Math.max(0, rulesPerGroup - used);
        if (room === 0) return { created: [], over: specs };
        const byRoom = room < specs.length && depth < 4;
        const cut = byRoom ? room : Math.ceil(specs.length / 2);
        const first = await fill(groupId, specs.slice(0, cut), byRoom ? depth + 1 : depth);
        // What fits was sent, or the first part already hit the quota: the group is full for this family.
        if (byRoom || first.over.length > 0) return { created: first.created, over: [...first.over, ...specs.slice(cut)] };
        const second = await fill(groupId, specs.slice(cut), depth);
        return { created: [...first.created, ...second.created], over: second.over };
      }
      if (code === 'InvalidPermission.Duplicate' && depth < 2) {
        // Already there (a race, or a rule someone else created): look the rules up and send the rest.
        const present = (await describeRules([{ Name: 'group-id', Values: [groupId] }])).filter((r) => r.IsEgress !== true);
        const existing = new Set(present.map((r) => ruleKey(r.GroupId, r.CidrIpv4 ?? r.CidrIpv6 ?? '', r.IpProtocol, r.FromPort)));
        const missing = specs.filter((s) => !existing.has(ruleKey(groupId, s.hg.cidr, s.proto, s.port)));
        logger.debug({ event: 'cloud.grant', provider: 'aws', groupId, alreadyThere: specs.length - missing.length }, 'some rules already existed');
        const ids = new Set(specs.map((s) => s.hg.grant.id));
        const rest = await fill(groupId, missing, depth + 1);
        return { created: [...owned(present).filter((r) => ids.has(r.grantId)), ...rest.created], over: rest.over };
      }
      throw err;
    }
  }

  async function grant(hgs: readonly HostGrant[]): Promise<CloudRule[]> {
    let pending: RuleSpec[] = hgs.flatMap((hg) => hg.grant.ports.map((p) => ({ hg, port: p.port, proto: p.proto })));
    const created: CloudRule[] = [];
    for (const groupId of config.securityGroupIds) {
      const left: RuleSpec[] = [];
      for (const family of [4, 6] as Family[]) {
        const mine = pending.filter((s) => s.hg.family === family);
        if (full.has(`${groupId}|${family}`)) {
          left.push(...mine);
          continue;
        }
        const parts = chunk(mine, RULES_PER_CALL);
        for (const [i, part] of parts.entries()) {
          const r = await fill(groupId, part);
          created.push(...r.created);
          if (r.over.length > 0) {
            // This group is full for this family: everything not yet sent moves to the next group.
            full.add(`${groupId}|${family}`);
            left.push(...r.over, ...parts.slice(i + 1).flat());
            logger.info({ event: 'cloud.quota', provider: 'aws', groupId, family, spilled: left.length }, `security group ${groupId} is full for IPv${family}: spilling to the next configured group`);
            break;
          }
        }
      }
      pending = left;
      if (pending.length === 0) return created;
    }
    const grants = [...new Set(pending.map((s) => s.hg.grant.id))];
    logger.error({ event: 'cloud.quota', provider: 'aws', groups: config.securityGroupIds, rulesLeft: pending.length, grants },
      'every configured security group is full (60 inbound rules per family by default): use mode prefix-list, add a security group, or raise the quota');
    throw kgwError('KGW_CLOUD_QUOTA', `no room for ${pending.length} rule(s) in security groups ${config.securityGroupIds.join(', ')}: switch aws.mode to prefix-list or add a security group`, { grants, groups: config.securityGroupIds });
  }

  async function revoke(grants: readonly Grant[], rules: readonly CloudRule[] | undefined): Promise<void> {
    const ids = new Set(grants.map((g) => g.id));
    const named = (rules ?? []).filter((r) => ids.has(r.grantId) && r.key.startsWith('sg-'));
    const covered = new Set(named.map((r) => r.grantId));
    // Rule ids the caller did not have (a direct call, or rules made by another node): look them up.
    const lookedUp = grants.some((g) => !covered.has(g.id)) ? owned(await ownedRules()).filter((r) => ids.has(r.grantId) && !covered.has(r.grantId)) : [];
    const byGroup = new Map<string, string[]>();
    for (const r of [...named, ...lookedUp]) {
      const [groupId = '', ruleId = ''] = r.key.split('/');
      byGroup.set(groupId, [...(byGroup.get(groupId) ?? []), ruleId]);
    }
    for (const [groupId, ruleIds] of byGroup) {
      full.delete(`${groupId}|4`);
      full.delete(`${groupId}|6`);
      for (const part of chunk(ruleIds, 100)) await revokeIds(groupId, part, 0);
    }
  }

  async function revokeIds(groupId: string, ruleIds: string[], depth: number): Promise<void> {
    try {
      await call('RevokeSecurityGroupIngress', () => client.send(new sdk.RevokeSecurityGroupIngressCommand({ GroupId: groupId, SecurityGroupRuleIds: ruleIds })));
    } catch (err) {
      const code = awsCode(err);
      if (code !== 'InvalidSecurityGroupRuleId.NotFound' && code !== 'InvalidPermission.NotFound') throw err;
      if (ruleIds.length === 1 || depth >= 2) return; // already gone: that is what we wanted
      // One id of the batch is gone: the call changed nothing, so send the ones that still exist.
      const still = new Set((await ownedRules()).map((r) => r.SecurityGroupRuleId));
      await revokeIds(groupId, ruleIds.filter((id) => still.has(id)), depth + 1);
    }
  }

  return {
    grant,
    revoke,
    async list() {
      full.clear();
      return owned(await ownedRules());
    },
  };
}
