// The periodic pass and the cost of a knock, on every provider against the wire-protocol fakes:
// drift (a rule deleted by hand comes back within one sweep), world-open rules outside knockgw
// (a coded warning, a metric, and doctor's finding with the command that removes it), and the
// API calls a knock arriving alone costs once the cloud is known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCloudSync, type CloudSync } from '../../gateway/services/cloud-sync.ts';
import { checkWorldOpen } from '../../gateway/wiring/cloud-firewalls.ts';
import { createMetrics } from '../../gateway/services/metrics.ts';
import type { Config } from '../../gateway/config/types.ts';
import type { CloudFirewall } from '../../gateway/ports.ts';
import { grantFor, manyIps } from '../helpers/cloud.ts';
import { awsLab, clockAt, gcpLab, PL4, SG, SSH } from '../helpers/cloud-labs.ts';

type Ctx = Parameters<typeof awsLab>[0];
const syncOf = (fw: CloudFirewall, lab: { log: { logger: Parameters<typeof createCloudSync>[0]['logger'] } }, metrics = createMetrics()): CloudSync =>
  createCloudSync({ firewalls: [fw], logger: lab.log.logger, clock: clockAt(Date.now()), metrics });

/** Every provider and mode, with a way to delete one of knockgw's entries behind its back. */
const PROVIDERS = {
  'aws rules': async (t: Ctx) => {
    const lab = await awsLab(t, 'rules');
    return { lab, fw: await lab.adapter(), held: () => lab.fake.rules().map((r) => r.cidr).sort(), deleteOne: () => lab.fake.deleteByHand(lab.fake.rules()[0]?.id ?? '') };
  },
  'aws prefix-list': async (t: Ctx) => {
    const lab = await awsLab(t, 'prefix-list');
    const entries = (): Map<string, string> => lab.fake.prefixList(PL4).entries;
    // Removing an entry by hand is a change of the list: its version moves on, as on AWS.
    return { lab, fw: await lab.adapter(), held: () => [...entries().keys()].sort(), deleteOne: () => { const first = [...entries().keys()][0] ?? ''; lab.fake.bumpVersion(PL4); return entries().delete(first); } };
  },
  'gcp aggregated': async (t: Ctx) => {
    const lab = await gcpLab(t, 'aggregated');
    return { lab, fw: await lab.adapter(), held: () => lab.fake.firewalls().flatMap((r) => r.sourceRanges ?? []).sort(), deleteOne: () => lab.fake.deleteByHand(lab.fake.firewalls()[0]?.name ?? '') };
  },
  'gcp per-grant': async (t: Ctx) => {
    const lab = await gcpLab(t, 'per-grant');
    return { lab, fw: await lab.adapter(), held: () => lab.fake.firewalls().flatMap((r) => r.sourceRanges ?? []).sort(), deleteOne: () => lab.fake.deleteByHand(lab.fake.firewalls()[0]?.name ?? '') };
  },
} as const;

for (const [name, make] of Object.entries(PROVIDERS)) {
  void test(`${name}: a knock arriving alone costs at most 2 API calls once the cloud is known`, async (t) => {
    const { fw, lab } = await make(t);
    const sync = syncOf(fw, lab);
    await sync.reconcile([]); // the start-up pass: the one listing
    const grants = manyIps(10).map((ip) => grantFor(ip));
    const costs: number[] = [];
    for (let i = 1; i <= grants.length; i++) {
      const r = await sync.reconcile(grants.slice(0, i));
      assert.deepEqual([r.granted, r.errors], [1, 0]);
      costs.push(r.apiCalls);
    }
    t.diagnostic(`${name}: API calls per lone knock ${costs.join(',')}`);
    assert.ok(costs.every((c) => c <= 2), `every knock ≤ 2 calls: ${costs.join(',')}`);
    const close = await sync.reconcile(grants.slice(1));
    assert.ok(close.apiCalls <= 2, `closing one costs ${close.apiCalls}`);
  });

  void test(`${name}: a knockgw entry deleted by hand comes back within one periodic pass`, async (t) => {
    const { fw, lab, held, deleteOne } = await make(t);
    const sync = syncOf(fw, lab);
    const grants = manyIps(3).map((ip) => grantFor(ip));
    await sync.reconcile(grants);
    const before = held();
    assert.equal(before.length, 3);
    assert.ok(deleteOne(), 'deleted by hand');
    const lost = before.length - held().length;
    assert.ok(lost > 0);
    // No grant changed: a reconcile trusts what it knows; the sweep lists and compares.
    assert.equal((await sync.reconcile(grants)).apiCalls, 0);
    const r = await sync.sweep();
    assert.deepEqual([r.granted, r.errors], [lost, 0]);
    assert.deepEqual(held(), before);
    assert.equal(lab.log.named('cloud.repair').length, 1);
    assert.equal(sync.counters().repaired, r.granted);
  });
}

void test('aws: a world-open rule on a protected port in a configured group is a coded warning, a metric and a removal command', async (t) => {
  const lab = await awsLab(t, 'rules');
  const open22 = lab.fake.addForeign({ groupId: SG, cidr: '0.0.0.0/0', proto: 'tcp', fromPort: 22, toPort: 22 });
  const everything6 = lab.fake.addForeign({ groupId: SG, cidr: '::/0', proto: '-1', fromPort: -1, toPort: -1 });
  lab.fake.addForeign({ groupId: SG, cidr: '0.0.0.0/0', proto: 'tcp', fromPort: 443, toPort: 443 }); // not a protected port
  lab.fake.addForeign({ groupId: SG, cidr: '203.0.113.0/24', proto: 'tcp', fromPort: 22, toPort: 22 }); // not the world
  const metrics = createMetrics();
  const sync = syncOf(await lab.adapter(), lab, metrics);
  await sync.reconcile([grantFor('203.0.113.40')]);
  const r = await sync.sweep();
  assert.equal(r.worldOpen, 2);
  const warned = lab.log.named('cloud.world_open');
  assert.deepEqual(warned.map((e) => e.rule).sort(), [open22.id, everything6.id].sort());
  assert.ok(warned.every((e) => e.code === 'KGW_CLOUD_WORLD_OPEN' && e.level === 'warn' && e.severity === 'WARNING'));
  assert.equal(warned.find((e) => e.rule === open22.id)?.remove, `aws ec2 revoke-security-group-ingress --group-id ${SG} --security-group-rule-ids ${open22.id} --region eu-west-1`);
  assert.deepEqual(warned.find((e) => e.rule === everything6.id)?.ports, ['22/tcp']);
  assert.equal(await metrics.get('cloud_world_open_rules', { provider: 'aws' }), 2);
  assert.match(await metrics.render(), /knockgw_cloud_world_open_rules\{provider="aws"\} 2/);
  // knockgw's own rule (203.0.113.40/32) is never among them; once the foreign rules go, neither is anything else.
  lab.fake.deleteByHand(open22.id);
  lab.fake.deleteByHand(everything6.id);
  assert.equal((await sync.sweep()).worldOpen, 0);
  assert.equal(await metrics.get('cloud_world_open_rules', { provider: 'aws' }), 0);
});

void test('gcp: a world-open rule applying to the gateway is reported; other targets, networks, denies and disabled rules are not', async (t) => {
  const lab = await gcpLab(t, 'aggregated');
  const net = `https://www.googleapis.com/compute/v1/projects/${lab.fake.project}/global/networks/default`;
  const allow22 = { IPProtocol: 'tcp', ports: ['20-30'] };
  lab.fake.addForeign({ name: 'allow-ssh-everywhere', network: net, direction: 'INGRESS', allowed: [allow22], sourceRanges: ['0.0.0.0/0'] });
  lab.fake.addForeign({ name: 'gateway-all-v6', network: net, direction: 'INGRESS', allowed: [{ IPProtocol: 'all' }], sourceRanges: ['::/0'], targetTags: ['knockgw'] });
  lab.fake.addForeign({ name: 'no-source-means-world', network: net, direction: 'INGRESS', allowed: [allow22], targetTags: ['knockgw'] });
  lab.fake.addForeign({ name: 'web-servers-only', network: net, direction: 'INGRESS', allowed: [allow22], sourceRanges: ['0.0.0.0/0'], targetTags: ['web'] });
  lab.fake.addForeign({ name: 'other-network', network: net.replace('/default', '/other'), direction: 'INGRESS', allowed: [allow22], sourceRanges: ['0.0.0.0/0'] });
  lab.fake.addForeign({ name: 'disabled-rule', network: net, direction: 'INGRESS', disabled: true, allowed: [allow22], sourceRanges: ['0.0.0.0/0'] });
  lab.fake.addForeign({ name: 'deny-ssh', network: net, direction: 'INGRESS', denied: [allow22], sourceRanges: ['0.0.0.0/0'] });
  lab.fake.addForeign({ name: 'https-only', network: net, direction: 'INGRESS', allowed: [{ IPProtocol: 'tcp', ports: ['443'] }], sourceRanges: ['0.0.0.0/0'] });
  const metrics = createMetrics();
  const sync = syncOf(await lab.adapter(), lab, metrics);
  await sync.reconcile([grantFor('203.0.113.41'), grantFor('2001:db8::41')]);
  assert.equal((await sync.sweep()).worldOpen, 3);
  const warned = lab.log.named('cloud.world_open');
  assert.deepEqual(warned.map((e) => e.rule).sort(), ['allow-ssh-everywhere', 'gateway-all-v6', 'no-source-means-world']);
  assert.ok(warned.every((e) => e.code === 'KGW_CLOUD_WORLD_OPEN'));
  assert.equal(warned.find((e) => e.rule === 'gateway-all-v6')?.remove, `gcloud compute firewall-rules delete gateway-all-v6 --project ${lab.fake.project}`);
  assert.equal(await metrics.get('cloud_world_open_rules', { provider: 'gcp' }), 3);
  assert.ok(!warned.some((e) => String(e.rule).startsWith('knockgw-')), "knockgw's own rules are never world-open");
});

void test('doctor: checkWorldOpen lists each world-open rule with the exact command that removes it', async (t) => {
  const aws = await awsLab(t, 'rules');
  const gcp = await gcpLab(t, 'aggregated');
  const rule = aws.fake.addForeign({ groupId: SG, cidr: '0.0.0.0/0', proto: 'tcp', fromPort: 0, toPort: 65535 });
  gcp.fake.addForeign({ name: 'legacy-ssh', network: `projects/${gcp.fake.project}/global/networks/default`, direction: 'INGRESS', allowed: [{ IPProtocol: 'tcp', ports: ['22'] }], sourceRanges: ['0.0.0.0/0'] });
  const config = { cloud: { aws: aws.config, gcp: gcp.config }, protectedPorts: SSH } as unknown as Config;
  const { findings, failures } = await checkWorldOpen(config, aws.log.logger);
  assert.deepEqual(failures, []);
  assert.deepEqual(findings.map((f) => [f.provider, f.rule, f.source, f.ports, f.removeCommand]), [
    ['aws', rule.id, '0.0.0.0/0', ['22/tcp'], `aws ec2 revoke-security-group-ingress --group-id ${SG} --security-group-rule-ids ${rule.id} --region eu-west-1`],
    ['gcp', 'legacy-ssh', '0.0.0.0/0', ['22/tcp'], `gcloud compute firewall-rules delete legacy-ssh --project ${gcp.fake.project}`],
  ]);
});
