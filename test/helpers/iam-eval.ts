// A small evaluator of the IAM policies knockgw generates (Allow statements; StringEquals, Null,
// ForAllValues:StringEquals), and the authorization requests EC2 makes of an API call, built from
// the Query parameters the SDK sent, after the Service Authorization Reference for EC2.
import type { IamPolicy } from '../../gateway/adapters/cloud/index.ts';

export type Context = Readonly<Record<string, string | readonly string[]>>;
export interface AuthzRequest { readonly action: string; readonly resource: string; readonly context: Context }

const glob = (pattern: string, value: string): boolean =>
  new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(value);

function conditionHolds(op: string, block: Readonly<Record<string, string | readonly string[]>>, ctx: Context): boolean {
  return Object.entries(block).every(([key, want]) => {
    const wants = [want].flat();
    const have = ctx[key];
    if (op === 'Null') return (have === undefined) === (wants[0] === 'true');
    if (op === 'StringEquals') return typeof have === 'string' && wants.includes(have);
    if (op === 'ForAllValues:StringEquals') return [have ?? []].flat().every((v) => wants.includes(v));
    throw new Error(`the evaluator does not know condition operator ${op}`);
  });
}

export function isAllowed(policy: IamPolicy, req: AuthzRequest): boolean {
  return policy.Statement.some((s) =>
    s.Action.includes(req.action)
    && [s.Resource].flat().some((r) => glob(r, req.resource))
    && Object.entries(s.Condition ?? {}).every(([op, block]) => conditionHolds(op, block, req.context)));
}

/** The authorizations one EC2 API call needs (every one must be allowed). */
export function authorizationsOf(call: { action: string; params: Readonly<Record<string, string>> }, env: { partition: string; region: string; account: string; taggedManaged: ReadonlySet<string> }): AuthzRequest[] {
  const arn = (type: string, id: string) => `arn:${env.partition}:ec2:${env.region}:${env.account}:${type}/${id}`;
  const managed = (id: string): Context => (env.taggedManaged.has(id) ? { 'aws:ResourceTag/knockgw:managed': 'true' } : {});
  const p = call.params;
  const a = `ec2:${call.action}`;
  switch (call.action) {
    case 'AuthorizeSecurityGroupIngress': {
      const out: AuthzRequest[] = [{ action: a, resource: arn('security-group', p.GroupId ?? ''), context: managed(p.GroupId ?? '') }];
      const tags: Record<string, string> = {};
      for (let i = 1; p[`TagSpecification.1.Tag.${i}.Key`] !== undefined; i++) tags[p[`TagSpecification.1.Tag.${i}.Key`] ?? ''] = p[`TagSpecification.1.Tag.${i}.Value`] ?? '';
      if (Object.keys(tags).length > 0) {
        const ctx: Context = { ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:RequestTag/${k}`, v])), 'aws:TagKeys': Object.keys(tags) };
        out.push({ action: a, resource: arn('security-group-rule', 'sgr-new'), context: ctx });
        out.push({ action: 'ec2:CreateTags', resource: arn('security-group-rule', 'sgr-new'), context: { ...ctx, 'ec2:CreateAction': call.action } });
      }
      return out;
    }
    case 'RevokeSecurityGroupIngress':
      return [{ action: a, resource: arn('security-group', p.GroupId ?? ''), context: managed(p.GroupId ?? '') }];
    case 'ModifyManagedPrefixList':
    case 'GetManagedPrefixListEntries':
      return [{ action: a, resource: arn('prefix-list', p.PrefixListId ?? ''), context: managed(p.PrefixListId ?? '') }];
    default:
      return [{ action: a, resource: '*', context: { 'aws:RequestedRegion': env.region } }];
  }
}
