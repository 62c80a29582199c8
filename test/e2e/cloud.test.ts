// Cloud firewalls end to end (issue 6): the real daemon in a lab's server namespace, configured
// for AWS and GCP, talks to the EC2 and GCE fakes running as a process in that same namespace
// (test/fakes/serve.ts). A real knock must open the host port and, within seconds, a security
// group rule and a VPC firewall for the knocking address (GCP in aggregated mode, the default:
// the door's rule holds the address); closing must remove all three.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { decodeDoorMeta, decodeMeta } from '../../gateway/adapters/cloud/index.ts';
import { createLab, requireRoot, type Host, type Lab } from '../helpers/netns.ts';
import { canConnect, connectsWithin, refusedWithin, MAIN, startDaemon, startSshLike, tempDir, waitReady, type LogEvent, type RunningDaemon } from '../helpers/gateway.ts';
import { startCloudFakes, type CloudFakes, type FakesState } from '../helpers/cloud-fakes.ts';
import { useDummyAwsCredentials } from '../helpers/cloud.ts';

const SG = 'sg-0123456789abcdef0';
const PL4 = 'pl-0123456789abcdef0';
const PL6 = 'pl-0123456789abcdef6';
const PROJECT = 'knockgw-e2e';
/** Every cloud wait is bounded by this (the daemon reconciles the cloud ~1 s after a change). */
const CLOUD_WAIT_MS = 10_000;

type AwsMode = 'rules' | 'prefix-list';

const awsYaml = (fakes: CloudFakes, mode: AwsMode): string =>
  mode === 'rules'
    ? `{ region: eu-west-1, securityGroupIds: [${SG}], mode: rules, endpoint: "${fakes.ec2}" }`
    : `{ region: eu-west-1, securityGroupIds: [${SG}], mode: prefix-list, prefixListId: ${PL4}, prefixListIdV6: ${PL6}, endpoint: "${fakes.ec2}" }`;

const yaml = (fakes: CloudFakes, mode: AwsMode): string => `interface: br0
doors:
  - name: openSSH
    sequence: ["7000", "8000", "9000"]
    seqTimeout: 5
    open: ["22/tcp"]
    ttl: 60
    closeSequence: ["9000", "8000", "7000"]
  - name: shortSSH
    sequence: ["7100", "8100", "9100"]
    seqTimeout: 5
    open: ["22/tcp"]
    ttl: 3
cloud:
  aws: ${awsYaml(fakes, mode)}
  gcp: { project: ${PROJECT}, network: default, targetTags: [knockgw], endpoint: "${fakes.gce}" }
`;

interface World { lab: Lab; client: Host; fakes: CloudFakes; daemon: RunningDaemon }

async function world(t: TestContext, mode: AwsMode = 'rules'): Promise<World> {
  const lab = await createLab(1);
  const dir = await tempDir();
  t.after(async () => {
    await lab.destroy();
    await dir.remove();
  });
  const client = lab.clients[0];
  assert.ok(client);
  await waitReady(startSshLike(lab.server));

  const fakes = await startCloudFakes(lab.server, { socketPath: `${dir.path}/fakes.sock`, project: PROJECT, securityGroups: [SG], prefixLists: [`${PL4}:4`, `${PL6}:6`] });
  t.after(() => fakes.stop());

  // startDaemon passes this process's environment on: the SDK's default chain must find dummy
  // credentials and never try the instance metadata service.
  useDummyAwsCredentials();
  process.env.AWS_REGION = 'eu-west-1';
  const config = await dir.write('knockgw.yaml', yaml(fakes, mode));
  const started = Date.now();
  const daemon = startDaemon(lab.server, ['--config', config, '--state', `${dir.path}/state.json`, '--control', `${dir.path}/ctl.sock`]);
  t.after(() => daemon.kill());
  await daemon.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');
  await daemon.waitFor((e) => e.event === 'cloud.ready', 5_000, 'cloud.ready');
  t.diagnostic(`daemon start → ready with both cloud SDKs loaded: ${Date.now() - started} ms`);
  return { lab, client, fakes, daemon };
}

const knock = (w: World, args: string[]) => w.client.exec(process.execPath, [MAIN, 'knock', ...args]);
const isGrant = (e: LogEvent, event: string, ip: string) => e.event === event && e.ip === ip;

const ec2RulesFor = (s: FakesState, cidr: string) => s.ec2.rules.filter((r) => r.cidr === cidr);
const gceRulesFor = (s: FakesState, cidr: string) => s.gce.firewalls.filter((f) => f.sourceRanges?.includes(cidr));

/**
 * Both clouds hold exactly one rule for `cidr`, port 22/tcp, owned by knockgw: the EC2 rule names
 * `grantId`, the GCE rule (aggregated mode, the default) is the door's rule for that family.
 */
function assertCloudGrant(s: FakesState, cidr: string, family: 4 | 6, grantId: string, door: string): void {
  const [rule, ...moreEc2] = ec2RulesFor(s, cidr);
  assert.ok(rule, `an EC2 rule for ${cidr}`);
  assert.equal(moreEc2.length, 0, `one EC2 rule for ${cidr}`);
  assert.deepEqual({ group: rule.groupId, family: rule.family, proto: rule.proto, from: rule.fromPort, to: rule.toPort }, { group: SG, family, proto: 'tcp', from: 22, to: 22 });
  assert.ok('knockgw:grant' in rule.tags && 'knockgw:expires' in rule.tags, `the EC2 rule is tagged knockgw (tags: ${JSON.stringify(rule.tags)})`);
  assert.equal(decodeMeta(rule.description)?.grantId, grantId, 'the EC2 rule names the grant');

  const [fw, ...moreGce] = gceRulesFor(s, cidr);
  assert.ok(fw, `a GCE firewall for ${cidr}`);
  assert.equal(moreGce.length, 0, `one GCE firewall for ${cidr}`);
  assert.match(fw.name, new RegExp(`^knockgw-[0-9a-f]{12}-0-v${family}$`));
  assert.deepEqual(fw.sourceRanges, [cidr], 'the GCE firewall opens only this host, one family');
  assert.deepEqual(fw.targetTags, ['knockgw']);
  assert.deepEqual(fw.allowed, [{ IPProtocol: 'tcp', ports: ['22'] }]);
  assert.equal(decodeDoorMeta(typeof fw.description === 'string' ? fw.description : undefined)?.door, door, "the GCE firewall names the grant's door");
}

void test('an IPv4 knock opens port 22 on the host and in both clouds; the close sequence closes all three', async (t) => {
  if (!(await requireRoot(t))) return;
  const w = await world(t);
  const srv = w.lab.server.v4;
  const cidr = `${w.client.v4}/32`;
  assert.equal(await canConnect(w.client, srv, 22), false, 'port 22 is closed before any knock');
  const before = await w.fakes.state();
  assert.equal(before.ec2.rules.length + before.gce.firewalls.length, 0, 'no cloud rule before any knock');

  const t0 = Date.now();
  await knock(w, [srv, '7000', '8000', '9000']);
  const opened = await w.daemon.waitFor((e) => isGrant(e, 'grant.open', w.client.v4), 5000, 'grant.open');
  assert.equal(await connectsWithin(w.client, srv, 22), true, 'the knocking client connects to the host');
  const hostMs = Date.now() - t0;
  const s = await w.fakes.until((x) => ec2RulesFor(x, cidr).length > 0 && gceRulesFor(x, cidr).length > 0, CLOUD_WAIT_MS, `cloud rules for ${cidr}`);
  const cloudMs = Date.now() - t0;
  t.diagnostic(`knock → host connect ${hostMs} ms, knock → both cloud rules ${cloudMs} ms`);
  assert.equal(typeof opened.grantId, 'string');
  assertCloudGrant(s, cidr, 4, String(opened.grantId), 'openSSH');
  assert.equal(s.ec2.rules.length + s.gce.firewalls.length, 2, 'nothing else was opened in the clouds');

  const t1 = Date.now();
  await knock(w, [srv, '9000', '8000', '7000']);
  const closed = await w.daemon.waitFor((e) => isGrant(e, 'grant.close', w.client.v4), 5000, 'grant.close');
  assert.equal(closed.reason, 'sequence');
  assert.equal(await refusedWithin(w.client, srv, 22), true, 'the close sequence closes the host port');
  const after = await w.fakes.until((x) => x.ec2.rules.length === 0 && x.gce.firewalls.length === 0, CLOUD_WAIT_MS, 'both cloud rules removed');
  t.diagnostic(`close knock → both cloud rules removed ${Date.now() - t1} ms; EC2 calls ${JSON.stringify(after.ec2.calls)}; GCE calls ${JSON.stringify(after.gce.calls)}`);
  assert.equal(w.daemon.events.filter((e) => e.event === 'cloud.error').length, 0, 'no cloud call failed');
});

void test('an IPv6 knock gets an Ipv6Ranges rule and its own GCE firewall; a short TTL closes host and clouds', async (t) => {
  if (!(await requireRoot(t))) return;
  const w = await world(t);
  const srv = w.lab.server.v6;
  const cidr = `${w.client.v6}/128`;
  assert.equal(await canConnect(w.client, srv, 22), false, 'IPv6 port 22 is closed before any knock');

  const t0 = Date.now();
  await knock(w, ['-6', srv, '7100', '8100', '9100']);
  const opened = await w.daemon.waitFor((e) => isGrant(e, 'grant.open', w.client.v6), 5000, 'grant.open over IPv6');
  assert.equal(opened.door, 'shortSSH');
  assert.equal(await connectsWithin(w.client, srv, 22), true, 'the knocking client connects over IPv6');
  const s = await w.fakes.until((x) => ec2RulesFor(x, cidr).length > 0 && gceRulesFor(x, cidr).length > 0, CLOUD_WAIT_MS, `cloud rules for ${cidr}`);
  t.diagnostic(`IPv6 knock → both cloud rules ${Date.now() - t0} ms`);
  assertCloudGrant(s, cidr, 6, String(opened.grantId), 'shortSSH');
  assert.equal(s.ec2.rules.length + s.gce.firewalls.length, 2, 'nothing else was opened in the clouds (no IPv4 rule)');

  // ttl: 3 — no close knock; expiry alone must clear the host and both clouds.
  const closed = await w.daemon.waitFor((e) => isGrant(e, 'grant.close', w.client.v6), CLOUD_WAIT_MS, 'grant.close by ttl');
  assert.equal(closed.reason, 'ttl');
  assert.equal(await refusedWithin(w.client, srv, 22), true, 'expiry closes the host port');
  await w.fakes.until((x) => x.ec2.rules.length === 0 && x.gce.firewalls.length === 0, CLOUD_WAIT_MS, 'both cloud rules removed after expiry');
  t.diagnostic(`IPv6 knock → host and cloud closed by ttl ${Date.now() - t0} ms`);
  assert.equal(w.daemon.events.filter((e) => e.event === 'cloud.error').length, 0, 'no cloud call failed');
});

void test('in AWS prefix-list mode a knock adds the address to the managed prefix list (and GCE opens a rule); the close sequence removes both', async (t) => {
  if (!(await requireRoot(t))) return;
  const w = await world(t, 'prefix-list');
  const srv = w.lab.server.v4;
  const cidr = `${w.client.v4}/32`;

  const t0 = Date.now();
  await knock(w, [srv, '7000', '8000', '9000']);
  const opened = await w.daemon.waitFor((e) => isGrant(e, 'grant.open', w.client.v4), 5000, 'grant.open');
  assert.equal(await connectsWithin(w.client, srv, 22), true, 'the knocking client connects to the host');
  const entryOf = (s: FakesState) => s.ec2.prefixLists.find((l) => l.id === PL4)?.entries[cidr];
  const s = await w.fakes.until((x) => entryOf(x) !== undefined && gceRulesFor(x, cidr).length > 0, CLOUD_WAIT_MS, `a prefix-list entry and a GCE rule for ${cidr}`);
  t.diagnostic(`knock → prefix-list entry and GCE rule ${Date.now() - t0} ms`);
  assert.equal(decodeMeta(entryOf(s))?.grantId, opened.grantId, 'the prefix-list entry names the grant');
  assert.equal(s.ec2.rules.length, 0, 'no security-group rule in prefix-list mode');
  assert.deepEqual(s.ec2.prefixLists.find((l) => l.id === PL6)?.entries, {}, 'nothing in the IPv6 list');
  assert.deepEqual(gceRulesFor(s, cidr).map((f) => f.sourceRanges), [[cidr]]);

  await knock(w, [srv, '9000', '8000', '7000']);
  await w.daemon.waitFor((e) => isGrant(e, 'grant.close', w.client.v4), 5000, 'grant.close');
  assert.equal(await refusedWithin(w.client, srv, 22), true, 'the close sequence closes the host port');
  await w.fakes.until((x) => entryOf(x) === undefined && x.gce.firewalls.length === 0, CLOUD_WAIT_MS, 'the prefix-list entry and the GCE rule removed');
  assert.equal(w.daemon.events.filter((e) => e.event === 'cloud.error').length, 0, 'no cloud call failed');
});
