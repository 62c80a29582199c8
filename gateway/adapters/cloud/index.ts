// The CloudFirewall port (ports.ts): AWS security groups / prefix lists and GCP firewall rules,
// with the permissions each needs (policy), sharing the retry, metadata and host-grant code (common).
export { AWS_IAM_ACTIONS, TAG_EXPIRES, TAG_GRANT } from './aws/actions.ts';
export { createAwsCloudFirewall } from './aws/firewall.ts';
export type { AwsCloudFirewall } from './aws/firewall.ts';
export type { AwsTarget } from './aws/target.ts';
export { MANAGED_TAG, awsPartition, gatewayAwsPolicy, managedTagCommands } from './aws/policy.ts';
export type { IamPolicy } from './aws/policy.ts';
export { assertHostCidr, decodeDoorMeta, decodeMeta, hostGrants } from './common.ts';
export type { RetryPolicy } from './common.ts';
export { GCP_METHODS, GCP_PERMISSIONS, RULE_PREFIX, aggregatedRuleName, createGcpCloudFirewall, ruleName } from './gcp/firewall.ts';
export type { GcpCloudFirewall } from './gcp/firewall.ts';
export type { GcpTarget } from './gcp/target.ts';
export { gatewayGcpCommands, gatewayGcpCondition } from './gcp/policy.ts';
