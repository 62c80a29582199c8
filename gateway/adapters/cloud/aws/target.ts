// What the AWS adapters act on, declared here rather than borrowed from the config: the wiring
// maps `cloud.aws` onto it, so the config's shape can change without touching an adapter.
export interface AwsTarget {
  readonly region: string;
  readonly securityGroupIds: readonly string[];
  readonly mode: 'rules' | 'prefix-list';
  /** prefix-list mode: the IPv4 list; IPv6 grants need prefixListIdV6 (a prefix list has one family). */
  readonly prefixListId?: string;
  readonly prefixListIdV6?: string;
  /** An EC2 endpoint other than the region's (a VPC endpoint, or a test's fake). */
  readonly endpoint?: string;
}
