import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileYaml } from '../../gateway/config/load.ts';
import { DEFAULTS } from '../../gateway/config/draft.ts';
import { parseOpenSpec, parsePortSpec } from '../../gateway/core/port-spec.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { TCP } from '../../gateway/core/types.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));
const PATH = '/etc/knockgw/knockgw.yaml';

function rejects(text: string, line: number, also?: RegExp): void {
  assert.throws(
    () => compileYaml(text, PATH, 'gw-a'),
    (err: unknown) => {
      assert.ok(isKnockgwError(err, 'KGW_CONFIG_INVALID'), `expected KGW_CONFIG_INVALID, got ${String(err)}`);
      assert.match(err.message, new RegExp(`${PATH.replaceAll('/', '\\/')}:${line}: `));
      if (also) assert.match(err.message, also);
      return true;
    },
  );
}

const door = 'doors:\n  - name: openSSH\n    sequence: [7000, 8000, 9000]\n';

void test('a minimal YAML config gets every default', () => {
  const cfg = compileYaml(readFileSync(fixture('knockgw-minimal.yaml'), 'utf8'), PATH, 'host-1');
  assert.deepEqual(cfg.source, { kind: 'yaml', path: PATH });
  assert.deepEqual(cfg.interfaces, ['eth0']);
  assert.equal(cfg.engine, 'auto');
  assert.equal(cfg.firewall, 'nftables');
  assert.equal(cfg.store, 'memory');
  assert.equal(cfg.stateFile, '/var/lib/knockgw/state.json');
  assert.equal(cfg.control, '/run/knockgw.sock');
  assert.equal(cfg.nodeId, 'host-1', 'nodeId defaults to the hostname');
  assert.deepEqual(cfg.log, { level: 'info', format: 'json' });
  assert.deepEqual(cfg.knockRateLimit, { perSecond: 20, burst: 40 });
  assert.equal(cfg.maxTrackedSources, 65536);
  assert.deepEqual(cfg.cloud, {});
  assert.equal(cfg.relay, undefined);
  assert.deepEqual(cfg.doors, [{ name: 'openSSH', open: [{ port: 22, proto: 'tcp' }], ttlMs: 3_600_000 }]);
  assert.deepEqual(cfg.protectedPorts, [{ port: 22, proto: 'tcp' }]);
  assert.equal(cfg.sequences.length, 1);
  const [s] = cfg.sequences;
  assert.equal(s?.timeoutMs, 25_000);
  assert.deepEqual(s?.tcpFlags, { require: TCP.SYN, forbid: 0 });
  assert.equal(s?.origin, `${PATH}:3`);
  assert.ok(Object.isFrozen(cfg.doors[0]?.open));
  assert.equal(DEFAULTS.maxTrackedSources, 65536);
});

void test('every YAML field reaches the compiled Config', () => {
  const cfg = compileYaml(readFileSync(fixture('knockgw-full.yaml'), 'utf8'), PATH, 'host-1');
  assert.deepEqual(cfg.interfaces, ['eth0', 'eth1']);
  assert.equal(cfg.engine, 'pcap');
  assert.equal(cfg.firewall, 'iptables');
  assert.equal(cfg.store, 'redis://127.0.0.1:6379/0');
  assert.equal(cfg.stateFile, '/var/lib/knockgw/test-state.json');
  assert.equal(cfg.nodeId, 'gw-a');
  assert.equal(cfg.control, '/run/knockgw-test.sock');
  assert.deepEqual(cfg.log, { level: 'debug', format: 'pretty', file: '/var/log/knockgw.log' });
  assert.deepEqual(cfg.knockRateLimit, { perSecond: 10, burst: 30 });
  assert.equal(cfg.maxTrackedSources, 1024);
  assert.deepEqual(cfg.relay, { keysFile: '/etc/knockgw/keys.json', listen: '[::]:8080', trustedProxies: 1 });
  assert.deepEqual(cfg.cloud.aws, { region: 'eu-west-1', securityGroupIds: ['sg-0123456789abcdef0'], mode: 'prefix-list', prefixListId: 'pl-0123456789abcdef0', prefixListIdV6: 'pl-0fedcba9876543210', endpoint: 'http://127.0.0.1:4566' });
  assert.deepEqual(cfg.cloud.gcp, { project: 'my-proj-123', network: 'default', targetTags: ['knockgw'], targetServiceAccounts: [], priority: 800, mode: 'aggregated', endpoint: 'http://127.0.0.1:8085' });
  assert.deepEqual(cfg.doors, [
    { name: 'openSSH', open: [{ port: 22, proto: 'tcp' }, { port: 60001, proto: 'udp' }], ttlMs: 600_000 },
    { name: 'web', open: [{ port: 443, proto: 'tcp' }], ttlMs: 0 },
  ]);
  assert.deepEqual(cfg.protectedPorts, [{ port: 22, proto: 'tcp' }, { port: 60001, proto: 'udp' }, { port: 443, proto: 'tcp' }]);
  assert.deepEqual(cfg.sequences.map((s) => [s.id, s.door, s.action.kind]), [['openSSH', 'openSSH', 'open'], ['openSSH:close', 'openSSH', 'close'], ['web', 'web', 'open']]);
  const [open, close] = cfg.sequences;
  assert.deepEqual(open?.ports, [{ port: 7000, proto: 'tcp' }, { port: 8000, proto: 'tcp' }, { port: 9000, proto: 'udp' }]);
  assert.deepEqual(open?.tcpFlags, { require: TCP.SYN, forbid: TCP.ACK });
  assert.equal(open?.timeoutMs, 5000);
  assert.equal(close?.timeoutMs, 5000);
  assert.deepEqual(close?.ports.map((p) => p.port), [9000, 8000, 7000]);
  assert.equal(close?.origin, `${PATH}:15`);
});

void test('cloud.gcp.mode: aggregated by default, per-grant on request, anything else refused', () => {
  const gcp = (extra: string): string => `${door}cloud:\n  gcp: { project: my-proj-123, targetTags: [knockgw]${extra} }\n`;
  assert.equal(compileYaml(gcp(''), PATH, 'gw-a').cloud.gcp?.mode, 'aggregated');
  assert.equal(compileYaml(gcp(', mode: per-grant'), PATH, 'gw-a').cloud.gcp?.mode, 'per-grant');
  rejects(gcp(', mode: one-rule'), 5, /cloud\.gcp\.mode/);
});

void test('a YAML syntax error names the file and line', () => {
  rejects('doors:\n  - name: a\n    sequence: [7000, 8000\n  - name: b\n', 4, /YAML syntax error/);
  rejects('engine: auto\nengine: pcap\n' + door, 2, /unique/);
});

void test('a value of the wrong type names the key path and its line', () => {
  rejects(`${door}    seqTimeout: five\n`, 4, /doors\[0\]\.seqTimeout: .*number/);
  rejects(`engine: turbo\n${door}`, 1, /engine: .*"auto"/);
  rejects(`${door}    open: ["22/icmp"]\n`, 4, /doors\[0\]\.open\[0\]: "22\/icmp" is not a port to open.*22\/tcp/);
  rejects(`${door}    tcpFlags: "syn,ack,nope"\n`, 4, /"nope".*syn,!ack/);
  rejects('doors:\n  - name: a\n    sequence: [7000, 70000]\n', 3, /sequence\[1\]: "70000"/);
  rejects(`stateFile: relative/state.json\n${door}`, 1, /absolute path/);
  rejects(`store: mongodb://x\n${door}`, 1, /redis:\/\//);
  rejects(`${door}relay:\n  keysFile: /k.json\n  listen: localhost\n`, 6, /relay\.listen: .*ADDR:PORT/);
});

void test('an unknown key is an error with the line and a suggestion, at every level', () => {
  rejects(`${door}    ttll: 60\n`, 4, /unknown key "ttll" in doors\[0\] \(did you mean "ttl"\?\)/);
  rejects(`interfaces: eth0\n${door}`, 1, /did you mean "interface"/);
  rejects(`${door}log:\n  level: info\n  fromat: json\n`, 6, /unknown key "fromat" in log.*"format"/);
  rejects(`${door}cloud:\n  gcp: { project: my-proj-123, targetTags: [a], prio: 5 }\n`, 5, /"prio" in cloud\.gcp/);
});

void test('a missing or empty required field points at its parent', () => {
  rejects('engine: auto\n', 1, /doors/);
  rejects('doors: []\n', 1, /at least one door/);
  rejects('', 1, /empty/);
  rejects('doors:\n  - name: a\n', 2, /doors\[0\]\.sequence/);
});

void test('cross-field rules: unique door names and sequences, cloud targets, prefix-list id', () => {
  rejects('doors:\n  - name: a\n    sequence: [1, 2]\n  - name: a\n    sequence: [3, 4]\n', 4, /already used/);
  rejects('doors:\n  - name: a\n    sequence: [1, 2]\n  - name: b\n    sequence: [1, 2]\n', 5, /same as the sequence of door "a"/);
  rejects('doors:\n  - name: a\n    sequence: [1, 2]\n    closeSequence: [1, 2]\n', 4, /same as/);
  rejects(`${door}cloud:\n  gcp: { project: my-proj-123 }\n`, 5, /targetTags/);
  rejects(`${door}cloud:\n  aws: { region: eu-west-1, securityGroupIds: [sg-0123456789abcdef0], mode: prefix-list }\n`, 5, /prefixListId/);
  rejects(`${door}cloud:\n  aws: { region: eu-west-1, securityGroupIds: [sg-xyz] }\n`, 5, /security group id/);
});

void test('port spec helpers parse knock and open ports and refuse anything outside 1..65535', () => {
  assert.deepEqual(parsePortSpec('9000:udp'), { port: 9000, proto: 'udp' });
  assert.deepEqual(parsePortSpec(' 7000 '), { port: 7000, proto: 'tcp' });
  assert.deepEqual(parseOpenSpec('22/tcp'), { port: 22, proto: 'tcp' });
  assert.deepEqual(parseOpenSpec('53/UDP'), { port: 53, proto: 'udp' });
  for (const bad of ['0', '65536', '-1', '22/tcp', '1e3', '', '22:sctp', '1:tcp:x']) {
    assert.throws(() => parsePortSpec(bad), (e: unknown) => isKnockgwError(e, 'KGW_PORT_INVALID'), bad);
  }
  assert.throws(() => parseOpenSpec('22:tcp'), (e: unknown) => isKnockgwError(e, 'KGW_PORT_INVALID'));
});

void test('a TTL beyond what the kernel and Node timers hold, or a knock table beyond the memory budget, is refused', () => {
  rejects(`${door}    ttl: 3000000\n`, 4, /at most 2147483 s/);
  assert.equal(compileYaml(`${door}    ttl: 2147483\n`, PATH, 'gw-a').doors[0]?.ttlMs, 2_147_483_000);
  // Schema-valid, but 16M sources per sequence would exhaust the heap under a flood.
  rejects(`${door}maxTrackedSources: 16777216\n`, 4, /maxTrackedSources 16777216 .* over the 256 MiB budget; use at most \d+/);
  assert.equal(compileYaml(`${door}maxTrackedSources: 262144\n`, PATH, 'gw-a').maxTrackedSources, 262144);
});

void test('ha.maxStaleness: default 60 s, at least 2, at most the grant TTL limit, a config error naming the range otherwise', () => {
  const door = 'doors:\n  - name: d\n    sequence: ["7000", "8000"]\n    open: ["22/tcp"]\n';
  assert.equal(compileYaml(door, 'k.yaml', 'h').maxStalenessS, 60);
  assert.equal(compileYaml(`ha: { maxStaleness: 5 }\n${door}`, 'k.yaml', 'h').maxStalenessS, 5);
  for (const bad of ['0', '-1', '"ten"', '2147484', '1.5']) {
    assert.throws(() => compileYaml(`ha: { maxStaleness: ${bad} }\n${door}`, 'k.yaml', 'h'), (err: Error & { code?: string }) => err.code === 'KGW_CONFIG_INVALID' && /from 2 to 2147483 seconds/.test(err.message), bad);
  }
});
