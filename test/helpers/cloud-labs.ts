// Cloud adapters wired to the wire-protocol fakes, as the cloud tests build them: one place for
// their configuration, so each test states only what it is about.
import { type AwsCloudFirewall, createAwsCloudFirewall, createGcpCloudFirewall, type GcpCloudFirewall } from '../../gateway/adapters/cloud/index.ts';
import type { AwsCloudConfig, GcpCloudConfig } from '../../gateway/config/types.ts';
import type { PortSpec } from '../../gateway/core/grant.ts';
import type { Logger } from '../../gateway/ports.ts';
import { startEc2Fake, type Ec2Fake, type Ec2FakeOptions } from '../fakes/ec2.ts';
import { startGceFake, type GceFake, type GceFakeOptions } from '../fakes/gce.ts';
import { captureLog, useDummyAwsCredentials, type CapturedLog } from './cloud.ts';

type Ctx = { after(fn: () => Promise<void> | void): void };

/** Enough attempts that a throttled burst always gets through on a loaded machine, still quick. */
export const FAST_RETRY = { baseMs: 5, capMs: 200, maxAttempts: 30, budgetMs: 20_000 };
export const SSH: readonly PortSpec[] = [{ port: 22, proto: 'tcp' }];
export const SG = 'sg-0123456789abcdef0';
export const PL4 = 'pl-0123456789abcdef0';

export interface GcpLab { fake: GceFake; log: CapturedLog; config: GcpCloudConfig; adapter(opts?: { maxRangesPerRule?: number; logger?: Logger }): Promise<GcpCloudFirewall> }

export async function gcpLab(t: Ctx, mode: GcpCloudConfig['mode'], fakeOpts: GceFakeOptions = {}): Promise<GcpLab> {
  const fake = await startGceFake(fakeOpts);
  const log = captureLog();
  const made: GcpCloudFirewall[] = [];
  t.after(async () => { for (const m of made) await m.close(); await fake.close(); });
  const config: GcpCloudConfig = { project: fake.project, network: 'default', targetTags: ['knockgw'], targetServiceAccounts: [], priority: 900, mode, endpoint: fake.endpoint };
  return {
    fake,
    log,
    config,
    async adapter(o = {}) {
      const fw = await createGcpCloudFirewall({ config, logger: o.logger ?? log.logger, protectedPorts: SSH, retry: FAST_RETRY, requestTimeoutMs: 2_000, ...(o.maxRangesPerRule ? { maxRangesPerRule: o.maxRangesPerRule } : {}) });
      made.push(fw);
      return fw;
    },
  };
}

export interface AwsLab { fake: Ec2Fake; log: CapturedLog; config: AwsCloudConfig; adapter(): Promise<AwsCloudFirewall> }

export async function awsLab(t: Ctx, mode: AwsCloudConfig['mode'], fakeOpts: Ec2FakeOptions = {}): Promise<AwsLab> {
  useDummyAwsCredentials();
  const fake = await startEc2Fake({ securityGroups: [SG], prefixLists: [{ id: PL4, family: 4 }], ...fakeOpts });
  const log = captureLog();
  const made: AwsCloudFirewall[] = [];
  t.after(async () => { for (const m of made) m.close(); await fake.close(); });
  const config: AwsCloudConfig = { region: 'eu-west-1', securityGroupIds: [SG], mode, prefixListId: PL4, endpoint: fake.endpoint };
  return {
    fake,
    log,
    config,
    async adapter() {
      const fw = await createAwsCloudFirewall({ config, logger: log.logger, protectedPorts: SSH, retry: FAST_RETRY, requestTimeoutMs: 2_000, settlePollMs: 20 });
      made.push(fw);
      return fw;
    },
  };
}

/** A clock the test moves. */
export function clockAt(ms: number): { now(): number; set(v: number): void } {
  let now = ms;
  return { now: () => now, set: (v) => { now = v; } };
}
