// SPA doors in the Config: the YAML spa: section, --fwknop-access alone or next to a knock
// config, the protected ports they add, and the command line that selects them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseCommand } from '../../gateway/cli.ts';
import { compileYaml, loadConfig } from '../../gateway/config/load.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { HMAC_KEY_BASE64, KEY_BASE64 } from '../fixtures/fwknop/packets.ts';
import { MAIN } from '../helpers/gateway.ts';

const fw = (name: string): string => fileURLToPath(new URL(`../fixtures/fwknop/${name}`, import.meta.url));
const conf = (name: string): string => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));
const ACCESS = fw('debian-access-keys.conf');

async function tempFile(t: { after(fn: () => Promise<void>): void }, name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-spa-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, name), text);
  return join(dir, name);
}

const spaYaml = (extra = ''): string => `spa:
  port: 40000
  maxPacketAge: 60
  access:
    - name: laptop
      source: [203.0.113.0/24, "2001:db8::/32"]
      keyBase64: "${KEY_BASE64}"
      hmacKeyBase64: "${HMAC_KEY_BASE64}"
      hmacDigest: sha512
      open: ["22/tcp", "2222/tcp"]
      ttl: 45
      requireSourceAddress: true
${extra}`;

void test('a YAML spa: section alone compiles to SPA doors whose ports are the protected ones', () => {
  const cfg = compileYaml(spaYaml(), '/etc/knockgw.yaml', 'gw');
  assert.equal(cfg.doors.length, 0);
  assert.deepEqual(cfg.protectedPorts, [{ port: 22, proto: 'tcp' }, { port: 2222, proto: 'tcp' }]);
  const spa = cfg.spa;
  assert.ok(spa);
  assert.deepEqual([spa.port, spa.maxPacketAgeMs, spa.source], [40000, 60_000, { kind: 'yaml', path: '/etc/knockgw.yaml' }]);
  const [s] = spa.access;
  assert.ok(s);
  assert.deepEqual([s.name, s.origin, s.ttlMs, s.maxTtlMs, s.requireSourceAddress, s.keys.hmacDigest], ['laptop', '/etc/knockgw.yaml:5', 45_000, 300_000, true, 'sha512']);
  assert.deepEqual(s.source === 'any' ? 'any' : s.source.map((c) => c.text), ['203.0.113.0/24', '2001:db8::/32']);
  assert.ok(Object.isFrozen(s.keys), 'the config is frozen, keys included');
  const defaults = compileYaml(spaYaml().replace(/ {6}source: .*\n/, '').replace(/ {6}(ttl|requireSourceAddress|hmacDigest): .*\n/g, ''), 'k.yaml', 'gw').spa?.access[0];
  assert.deepEqual(defaults && [defaults.source, defaults.ttlMs, defaults.maxTtlMs, defaults.requireSourceAddress, defaults.keys.hmacDigest], ['any', 30_000, 300_000, false, 'sha256']);
});

void test('YAML spa: mistakes name the line and say what is right', () => {
  const rejects = (text: string, line: number, re: RegExp): void => {
    assert.throws(() => compileYaml(text, 'k.yaml', 'gw'), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_INVALID') && e.message.includes(`k.yaml:${line}:`) && re.test(e.message), text);
  };
  rejects(spaYaml('      key: "also a passphrase"\n'), 7, /exactly one of keyBase64 and key/);
  rejects(spaYaml('      hmacKyeBase64: x\n'), 13, /unknown key "hmacKyeBase64".*did you mean "hmacKeyBase64"/);
  rejects(spaYaml().replace(`keyBase64: "${KEY_BASE64}"`, `keyBase64: "${HMAC_KEY_BASE64}"`), 7, /1-32 bytes/);
  rejects(spaYaml().replace('203.0.113.0/24', '203.0.113.0/0'), 6, /ANY/);
  rejects(spaYaml().replace('hmacDigest: sha512', 'hmacDigest: md5'), 9, /sha256/);
  rejects(`doors:\n  - name: laptop\n    sequence: [7000, 8000]\n${spaYaml()}`, 8, /door name "laptop" is already used/);
  rejects('engine: auto\n', 1, /doors.*spa\.access/);
});

void test('--fwknop-access alone: SPA doors and no knock doors; OPEN_PORTS are protected, else the default 22/tcp', async (t) => {
  const alone = await loadConfig({ hostname: 'gw', fwknopAccessPath: ACCESS, fwknopConfigPath: fw('debian-fwknopd.conf') });
  assert.deepEqual(alone.source, { kind: 'fwknop', path: ACCESS });
  assert.deepEqual([alone.doors, alone.sequences, alone.protectedPorts], [[], [], [{ port: 22, proto: 'tcp' }]]);
  assert.deepEqual(alone.spa?.source, { kind: 'fwknop', accessPath: ACCESS, configPath: fw('debian-fwknopd.conf') });
  const withPorts = await tempFile(t, 'access.conf', `SOURCE ANY\nKEY_BASE64 ${KEY_BASE64}\nHMAC_KEY_BASE64 ${HMAC_KEY_BASE64}\nOPEN_PORTS tcp/2222\n`);
  const c = await loadConfig({ hostname: 'gw', fwknopAccessPath: withPorts });
  assert.deepEqual(c.protectedPorts, [{ port: 2222, proto: 'tcp' }]);
  assert.equal(c.spa?.port, 62201, "fwknopd's defaults without fwknopd.conf");
  const fwknopdConf = await tempFile(t, 'fwknopd.conf', 'PCAP_INTF ens5;\n');
  const intf = await loadConfig({ hostname: 'gw', fwknopAccessPath: ACCESS, fwknopConfigPath: fwknopdConf });
  assert.deepEqual(intf.interfaces, ['ens5'], 'PCAP_INTF is the interface, as knockd.conf\'s Interface is');
  const overridden = await loadConfig({ hostname: 'gw', fwknopAccessPath: ACCESS, fwknopConfigPath: fwknopdConf, overrides: { interface: 'eth9' } });
  assert.deepEqual(overridden.interfaces, ['eth9']);
});

void test('--fwknop-access next to a knock config adds SPA doors and their ports', async (t) => {
  const withKnockd = await loadConfig({ hostname: 'gw', knockdPath: conf('knockd-guide.conf'), fwknopAccessPath: ACCESS });
  assert.equal(withKnockd.source.kind, 'knockd');
  assert.deepEqual([withKnockd.doors.map((d) => d.name), withKnockd.spa?.access.map((s) => s.name)], [['openSSH'], ['fwknop-1']]);
  const access = await tempFile(t, 'access.conf', `SOURCE ANY\nKEY_BASE64 ${KEY_BASE64}\nHMAC_KEY_BASE64 ${HMAC_KEY_BASE64}\nOPEN_PORTS tcp/443\n`);
  const withYaml = await loadConfig({ hostname: 'gw', yamlPath: conf('knockgw-minimal.yaml'), fwknopAccessPath: access, overrides: { firewall: 'iptables' } });
  assert.deepEqual(withYaml.protectedPorts, [{ port: 22, proto: 'tcp' }, { port: 443, proto: 'tcp' }]);
  const spaInYaml = await tempFile(t, 'k.yaml', spaYaml());
  await assert.rejects(loadConfig({ hostname: 'gw', yamlPath: spaInYaml, fwknopAccessPath: ACCESS }), (e: unknown) => isKnockgwError(e, 'KGW_CLI_USAGE') && /keep one/.test(e.message));
  await assert.rejects(loadConfig({ hostname: 'gw', fwknopConfigPath: fw('debian-fwknopd.conf') }), (e: unknown) => isKnockgwError(e, 'KGW_CLI_USAGE') && /--fwknop-access/.test(e.message));
  await assert.rejects(loadConfig({ hostname: 'gw', fwknopAccessPath: fw('debian-access.conf') }), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_FWKNOP') && /:205:/.test(e.message));
});

void test('the command line takes --fwknop-access alone or with one knock config; without it, at most one knock config (none: the default files)', () => {
  for (const sub of ['daemon', 'doctor', 'base', 'install']) {
    const c = parseCommand([sub, '--fwknop-access', '/etc/fwknop/access.conf', '--fwknop-config', '/etc/fwknop/fwknopd.conf']);
    assert.ok('source' in c && c.source.fwknopAccessPath === '/etc/fwknop/access.conf' && c.source.fwknopConfigPath === '/etc/fwknop/fwknopd.conf', sub);
    const both = parseCommand([sub, '--knockd-config', '/etc/knockd.conf', '--fwknop-access', '/a']);
    assert.ok('source' in both && both.source.knockdPath === '/etc/knockd.conf' && both.source.fwknopAccessPath === '/a', sub);
  }
  for (const argv of [['daemon', '--fwknop-config', '/f'], ['daemon', '--config', 'a', '--knockd-config', 'b', '--fwknop-access', 'c']]) {
    assert.throws(() => parseCommand(argv), (e: unknown) => isKnockgwError(e, 'KGW_CLI_USAGE'), argv.join(' '));
  }
  const none = parseCommand(['daemon']);
  assert.ok('source' in none && Object.keys(none.source).length === 0, 'no file named: loadConfig looks for the defaults');
});

void test('install --fwknop-access writes units that start the daemon with the same files', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-install-spa-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await promisify(execFile)(process.execPath, [MAIN, 'install', '--fwknop-access', ACCESS, '--fwknop-config', fw('debian-fwknopd.conf'), '--firewall', 'iptables', '--root', dir]);
  const daemon = await readFile(join(dir, 'etc/systemd/system/knockgw.service'), 'utf8');
  assert.match(daemon, new RegExp(`ExecStart=.* daemon --fwknop-access ${ACCESS} --fwknop-config ${fw('debian-fwknopd.conf')} --firewall iptables`));
  assert.doesNotMatch(daemon, /--knockd-config/);
});

void test('the SPA port is knockgw\'s alone, and SPA needs a firewall backend that writes rules', async (t) => {
  const refused = (e: unknown, re: RegExp): boolean => isKnockgwError(e, 'KGW_CONFIG_INVALID') && re.test(e.message);
  await assert.rejects(loadConfig({ hostname: 'gw', fwknopAccessPath: ACCESS, overrides: { firewall: 'none' } }), (e: unknown) => refused(e, /--firewall nftables or iptables/));
  const knockOnSpaPort = await tempFile(t, 'k.yaml', 'doors:\n  - name: d\n    sequence: ["7000", "62201:udp"]\n    open: ["22/tcp"]\n');
  await assert.rejects(loadConfig({ hostname: 'gw', yamlPath: knockOnSpaPort, fwknopAccessPath: ACCESS }), (e: unknown) => refused(e, /62201\/udp is also a knock port of d/));
  await assert.rejects(loadConfig({ hostname: 'gw', fwknopAccessPath: ACCESS, overrides: { ports: [{ port: 62201, proto: 'udp' }] } }), (e: unknown) => refused(e, /also a protected port/));
  const ok = await loadConfig({ hostname: 'gw', fwknopAccessPath: ACCESS, overrides: { firewall: 'iptables' } });
  assert.equal(ok.spa?.port, 62201);
});
