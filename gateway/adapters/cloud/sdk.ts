// The cloud SDKs are loaded when an adapter for that cloud is made, never by importing this
// folder: @google-cloud/compute alone costs ~1.3 s and ~250 MB of RSS to load, the EC2 client
// ~0.3 s and ~95 MB, most hosts use neither, and a host on AWS never needs Google's. One that
// is missing (a trimmed install) is a start-up error that says what to install. They stay plain
// dependencies, not optional ones: npm skips an optional package whose engines field its own Node
// does not meet (Debian's npm runs on Node 18/20, Google's SDK wants 22), silently.
import type * as Ec2 from '@aws-sdk/client-ec2';
import type { FirewallsClient, GlobalOperationsClient } from '@google-cloud/compute';
import type { PassThroughClient } from 'google-auth-library';
import { describeError, kgwError } from '../../core/errors.ts';

export type Ec2Sdk = typeof Ec2;
export interface GceSdk {
  readonly FirewallsClient: typeof FirewallsClient;
  readonly GlobalOperationsClient: typeof GlobalOperationsClient;
  readonly PassThroughClient: typeof PassThroughClient;
}

async function load<T>(cloud: 'aws' | 'gcp', pkg: string, importIt: () => Promise<T>): Promise<T> {
  try {
    return await importIt();
  } catch (err) {
    throw kgwError('KGW_CLOUD_SDK', `cloud.${cloud} needs the npm package ${pkg}, which cannot be loaded (${describeError(err)}): install it (npm i -g ${pkg} beside knockgw) or remove cloud.${cloud} from the config`, { cloud, package: pkg }, err);
  }
}

// Literal specifiers: the bundler splits each SDK into its own chunk only for these.
export const loadEc2Sdk = (): Promise<Ec2Sdk> => load('aws', '@aws-sdk/client-ec2', () => import('@aws-sdk/client-ec2'));

export async function loadGceSdk(): Promise<GceSdk> {
  const [compute, auth] = await Promise.all([
    load('gcp', '@google-cloud/compute', () => import('@google-cloud/compute')),
    load('gcp', 'google-auth-library', () => import('google-auth-library')),
  ]);
  return { FirewallsClient: compute.FirewallsClient, GlobalOperationsClient: compute.GlobalOperationsClient, PassThroughClient: auth.PassThroughClient };
}
