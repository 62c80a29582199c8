// The EC2 actions the AWS adapters call: the one list behind their call counters and behind
// infra/aws/gateway-iam.json (a test checks the policy against it).

/** Every EC2 action the adapter calls. */
export const AWS_EC2_ACTIONS = [
  'AuthorizeSecurityGroupIngress',
  'RevokeSecurityGroupIngress',
  'DescribeSecurityGroupRules',
  'DescribeManagedPrefixLists',
  'GetManagedPrefixListEntries',
  'ModifyManagedPrefixList',
] as const;
export type AwsAction = (typeof AWS_EC2_ACTIONS)[number];
/** IAM needs ec2:CreateTags as well: tagging on create (TagSpecifications) is authorised as CreateTags. */
export const AWS_IAM_ACTIONS: readonly string[] = [...AWS_EC2_ACTIONS, 'CreateTags'].map((a) => `ec2:${a}`);

/** The tags every rule knockgw creates carries (the IAM policy requires both and allows no other). */
export const TAG_GRANT = 'knockgw:grant';
export const TAG_EXPIRES = 'knockgw:expires';
