// The gateway's IAM policy for a configuration: every group and prefix list the AWS adapter may
// touch (spill groups, the IPv4 and the IPv6 list), in the region's partition, nothing else.
// `npm run iam -- aws` prints it; infra/aws/gateway-iam.json is its output for an example config.
//
// Statement shape, per the Service Authorization Reference for EC2:
// - AuthorizeSecurityGroupIngress authorizes the security group (keys aws:ResourceTag,
//   ec2:SecurityGroupID, ec2:Vpc) and, only when the request carries TagSpecifications, the new
//   security-group-rule (keys aws:RequestTag, aws:TagKeys). Tag conditions therefore sit in a
//   statement of their own on the rule ARN; on the group they would never match.
// - RevokeSecurityGroupIngress authorizes the security group alone: IAM cannot tell knockgw's
//   rules from others. The groups must be knockgw's own; both group statements require the tag
//   knockgw:managed=true, a second deliberate step besides listing the group here.
// - Tag-on-create is authorized as ec2:CreateTags with ec2:CreateAction.
// - The Describe calls take no resource; they are bound to the region.
import type { AwsTarget } from './target.ts';
import { TAG_EXPIRES, TAG_GRANT, type AwsAction } from './actions.ts';

/** The tag an operator puts on the groups and prefix lists handed to knockgw. */
export const MANAGED_TAG = 'knockgw:managed';

export interface IamStatement {
  readonly Sid: string;
  readonly Effect: 'Allow';
  readonly Action: readonly string[];
  readonly Resource: string | readonly string[];
  readonly Condition?: Readonly<Record<string, Readonly<Record<string, string | readonly string[]>>>>;
}
export interface IamPolicy { readonly Version: '2012-10-17'; readonly Statement: readonly IamStatement[] }

/** The ARN partition of a region (aws-cn, aws-us-gov, the isolated ones; aws otherwise). */
export function awsPartition(region: string): string {
  const prefixes: readonly [string, string][] = [['cn-', 'aws-cn'], ['us-gov-', 'aws-us-gov'], ['us-isob-', 'aws-iso-b'], ['us-isof-', 'aws-iso-f'], ['eu-isoe-', 'aws-iso-e'], ['us-iso-', 'aws-iso'], ['eusc-', 'aws-eusc']];
  return prefixes.find(([p]) => region.startsWith(p))?.[1] ?? 'aws';
}

const ec2 = (...actions: readonly (AwsAction | 'CreateTags')[]): string[] => actions.map((a) => `ec2:${a}`);
const managed = { StringEquals: { [`aws:ResourceTag/${MANAGED_TAG}`]: 'true' } };

export function gatewayAwsPolicy(config: Pick<AwsTarget, 'region' | 'securityGroupIds' | 'mode' | 'prefixListId' | 'prefixListIdV6'>, account: string): IamPolicy {
  if (!/^\d{12}$/.test(account)) throw new RangeError(`"${account}" is not a 12-digit AWS account id`);
  const arn = (type: string, id: string) => `arn:${awsPartition(config.region)}:ec2:${config.region}:${account}:${type}/${id}`;
  const groups = config.securityGroupIds.map((id) => arn('security-group', id));
  const lists = [config.prefixListId, config.prefixListIdV6].filter((id): id is string => id !== undefined).map((id) => arn('prefix-list', id));
  const tagKeys = { 'ForAllValues:StringEquals': { 'aws:TagKeys': [TAG_GRANT, TAG_EXPIRES] } };
  const statements: IamStatement[] = [];
  if (config.mode === 'rules') {
    statements.push(
      { Sid: 'KnockgwAuthorizeOnItsGroups', Effect: 'Allow', Action: ec2('AuthorizeSecurityGroupIngress'), Resource: groups, Condition: managed },
      {
        Sid: 'KnockgwNewRulesCarryItsTags', Effect: 'Allow', Action: ec2('AuthorizeSecurityGroupIngress'), Resource: [arn('security-group-rule', '*')],
        Condition: { Null: { [`aws:RequestTag/${TAG_GRANT}`]: 'false', [`aws:RequestTag/${TAG_EXPIRES}`]: 'false' }, ...tagKeys },
      },
      { Sid: 'KnockgwTagOnlyTheRulesItCreates', Effect: 'Allow', Action: ec2('CreateTags'), Resource: [arn('security-group-rule', '*')], Condition: { StringEquals: { 'ec2:CreateAction': 'AuthorizeSecurityGroupIngress' }, ...tagKeys } },
      { Sid: 'KnockgwRevokeOnItsGroups', Effect: 'Allow', Action: ec2('RevokeSecurityGroupIngress'), Resource: groups, Condition: managed },
    );
  } else {
    statements.push(
      { Sid: 'KnockgwEditItsPrefixLists', Effect: 'Allow', Action: ec2('ModifyManagedPrefixList'), Resource: lists, Condition: managed },
      { Sid: 'KnockgwReadItsPrefixLists', Effect: 'Allow', Action: ec2('GetManagedPrefixListEntries'), Resource: lists },
    );
  }
  // DescribeSecurityGroupRules in both modes: the sweep and the world-open report list the groups.
  statements.push({
    Sid: 'KnockgwDescribeCannotBeResourceScoped', Effect: 'Allow',
    Action: ec2('DescribeSecurityGroupRules', ...(config.mode === 'prefix-list' ? ['DescribeManagedPrefixLists' as const] : [])),
    Resource: '*', Condition: { StringEquals: { 'aws:RequestedRegion': config.region } },
  });
  return { Version: '2012-10-17', Statement: statements };
}

/** The commands that mark the groups and lists as knockgw's (the policy's condition). */
export function managedTagCommands(config: Pick<AwsTarget, 'region' | 'securityGroupIds' | 'mode' | 'prefixListId' | 'prefixListIdV6'>): string[] {
  const ids = config.mode === 'rules' ? config.securityGroupIds : [config.prefixListId, config.prefixListIdV6].filter((x): x is string => x !== undefined);
  return [`aws ec2 create-tags --region ${config.region} --resources ${ids.join(' ')} --tags Key=${MANAGED_TAG},Value=true`];
}
