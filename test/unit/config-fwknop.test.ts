// fwknopd's own access.conf and fwknopd.conf, unchanged: Debian's defaults, every directive
// knockgw honours, and every one it refuses, each refusal naming the file and the line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseFwknopAccess } from '../../gateway/config/fwknop-access.ts';
import { compileFwknop, parseFwknopdConf } from '../../gateway/config/fwknop-conf.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { authorizeSpa } from '../../gateway/core/spa.ts';
import { decodeSpa } from '../../gateway/protocol/fwknop.ts';
import { HMAC_KEY_BASE64, KEY_BASE64, PACKETS } from '../fixtures/fwknop/packets.ts';

const fixture = (name: string): { text: string; path: string } => {
  const path = fileURLToPath(new URL(`../fixtures/fwknop/${name}`, import.meta.url));
  return { text: readFileSync(path, 'utf8'), path };
};
const KEYS = `KEY_BASE64 ${KEY_BASE64}\nHMAC_KEY_BASE64 ${HMAC_KEY_BASE64}\n`;

function refused(parse: () => unknown, line: number, re: RegExp, label: string): void {
  assert.throws(parse, (e: unknown) => {
    assert.ok(isKnockgwError(e, 'KGW_CONFIG_FWKNOP'), `${label}: ${String(e)}`);
    assert.match(e.message, new RegExp(`access\\.conf:${line}: |fwknopd\\.conf:${line}: `), label);
    assert.match(e.message, re, label);
    return true;
  }, label);
}

void test("Debian's fwknopd.conf (all comments) is fwknopd's defaults: UDP 62201, packets up to 120 s old", () => {
  const { text, path } = fixture('debian-fwknopd.conf');
  assert.deepEqual(parseFwknopdConf(text, path), { port: 62201, maxPacketAgeMs: 120_000 });
});

void test("Debian's access.conf is refused at its __CHANGEME__ key, as fwknopd refuses it", () => {
  const { text, path } = fixture('debian-access.conf');
  assert.throws(() => parseFwknopAccess(text, path), (e: unknown) =>
    isKnockgwError(e, 'KGW_CONFIG_FWKNOP') && e.message.includes('debian-access.conf:205:') && /placeholder __CHANGEME__.*fwknop --key-gen/.test(e.message));
});

void test("Debian's access.conf with the two keys filled opens for the real client's packet, with fwknopd's defaults", () => {
  // debian-access-keys.conf = debian-access.conf with `sed` putting KEY_BASE64/HMAC_KEY_BASE64 of packets.ts in place of __CHANGEME__.
  const spa = compileFwknop(fixture('debian-access-keys.conf'), fixture('debian-fwknopd.conf'));
  assert.equal(spa.access.length, 1);
  const [s] = spa.access;
  assert.deepEqual(s && { name: s.name, source: s.source, open: s.open, restrict: s.restrict, ttlMs: s.ttlMs, maxTtlMs: s.maxTtlMs, rsa: s.requireSourceAddress, digest: s.keys.hmacDigest }, {
    name: 'fwknop-1', source: 'any', open: 'any', restrict: [], ttlMs: 30_000, maxTtlMs: 300_000, rsa: false, digest: 'sha256',
  });
  assert.match(s?.origin ?? '', /debian-access-keys\.conf:204$/);
  const o = authorizeSpa({ payload: Buffer.from(PACKETS.access.packet), src: '203.0.113.9', now: PACKETS.access.timestamp * 1000 }, spa.access, spa.maxPacketAgeMs, decodeSpa);
  assert.ok('grant' in o, JSON.stringify(o));
  assert.equal(o.grant.ip, '198.51.100.7');
});

void test('every honoured access.conf directive, across several stanzas', () => {
  const text = `# comment
; also a comment
SOURCE: 198.51.100.0/255.255.255.0, 203.0.113.7 ,2001:db8:1::/48
DESTINATION         ANY
OPEN_PORTS          tcp/22, UDP/53 ; a trailing comment
RESTRICT_PORTS      tcp/23
KEY                 correct horse
HMAC_KEY_BASE64     ${HMAC_KEY_BASE64}
HMAC_DIGEST_TYPE    SHA512
FW_ACCESS_TIMEOUT   60
MAX_FW_TIMEOUT      0
REQUIRE_SOURCE_ADDRESS  Yes
REQUIRE_USERNAME    alice
ENCRYPTION_MODE     cbc
ACCESS_EXPIRE_EPOCH 1900000000
ENABLE_CMD_EXEC     N
FORWARD_ALL         N

SOURCE ANY
${KEYS}REQUIRE_SOURCE N
ACCESS_EXPIRE 12/31/2030
`;
  const [a, b] = parseFwknopAccess(text, '/etc/fwknop/access.conf');
  assert.ok(a && b);
  assert.deepEqual(a.source === 'any' ? [] : a.source.map((c) => c.text), ['198.51.100.0/24', '203.0.113.7/32', '2001:db8:1::/48']);
  assert.deepEqual(a.open, [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }]);
  assert.deepEqual(a.restrict, [{ proto: 'tcp', port: 23 }]);
  assert.equal(Buffer.from(a.keys.keyBase64, 'base64').toString(), 'correct horse');
  assert.deepEqual([a.keys.hmacDigest, a.ttlMs, a.maxTtlMs, a.requireSourceAddress, a.requireUsername, a.expiresAt], ['sha512', 60_000, 300_000, true, 'alice', 1_900_000_000_000]);
  assert.deepEqual([a.name, a.origin, b.name, b.origin], ['fwknop-1', '/etc/fwknop/access.conf:3', 'fwknop-2', '/etc/fwknop/access.conf:19']);
  assert.deepEqual([b.source, b.open, b.requireSourceAddress, b.expiresAt], ['any', 'any', false, new Date(2030, 11, 31).getTime()]);
});

void test('what knockgw does not do is refused at its line, never ignored', () => {
  const stanza = `SOURCE ANY\n${KEYS}`; // lines 1-3
  const cases: [string, RegExp][] = [
    ['GPG_DECRYPT_ID ABCD1234', /GnuPG is not supported/],
    ['GPG_REQUIRE_SIG N', /GnuPG/],
    ['FORCE_NAT 192.168.1.2 22', /NAT access is not supported/],
    ['FORCE_SNAT 192.168.1.2', /NAT/],
    ['FORCE_MASQUERADE Y', /NAT.*set it to N/],
    ['ENABLE_CMD_EXEC Y', /commands are not run/],
    ['CMD_CYCLE_OPEN iptables -A …', /commands are not run/],
    ['CMD_EXEC_USER nobody', /commands/],
    ['%include_keys /root/keys.conf', /key files are not read/],
    ['%include /etc/fwknop/more.conf', /include files/],
    ['ENCRYPTION_MODE legacy', /only CBC/],
    ['HMAC_DIGEST_TYPE md5', /too weak/],
    ['HMAC_DIGEST_TYPE sha224', /must be one of/],
    ['DESTINATION 10.0.0.1', /only ANY/],
    ['OPEN_PORTS tcp/22,icmp/0', /"icmp\/0" is not proto\/port/],
    ['OPEN_PORTS tcp/0', /ports 1-65535/],
    ['FW_ACCESS_TIMEOUT soon', /seconds/],
    ['ACCESS_EXPIRE 2030-12-31', /MM\/DD\/YYYY/],
    ['KEY_BASE64 AAAA', /repeats what line 2/],
    ['FROBNICATE yes', /unknown directive "FROBNICATE"/],
    ['open_ports tcp/22', /upper-case/],
    ['SOURCE', /has no value/],
  ];
  for (const [line, re] of cases) refused(() => parseFwknopAccess(`${stanza}${line}\n`, '/x/access.conf'), 4, re, line);
});

void test('stanzas without the keys knockgw needs, or with keys fwknop cannot use, are refused', () => {
  const path = '/x/access.conf';
  refused(() => parseFwknopAccess('OPEN_PORTS tcp/22\nSOURCE ANY\n', path), 1, /before any SOURCE/, 'directive before SOURCE');
  refused(() => parseFwknopAccess(`SOURCE ANY\nKEY_BASE64 ${KEY_BASE64}\n`, path), 1, /no HMAC_KEY_BASE64.*--use-hmac/, 'no HMAC key');
  refused(() => parseFwknopAccess(`SOURCE ANY\nHMAC_KEY_BASE64 ${HMAC_KEY_BASE64}\n`, path), 1, /no KEY_BASE64/, 'no key');
  refused(() => parseFwknopAccess(`SOURCE ANY\nKEY_BASE64 ${KEY_BASE64}\nHMAC_KEY_BASE64 ${KEY_BASE64}\n`, path), 1, /the same/, 'same keys');
  refused(() => parseFwknopAccess(`SOURCE ANY\nKEY_BASE64 ${HMAC_KEY_BASE64}\n`, path), 2, /64 bytes; fwknop keys are 1-32 bytes/, 'long key');
  refused(() => parseFwknopAccess('SOURCE ANY\nKEY_BASE64 not_base64!\n', path), 2, /not base64/, 'bad base64');
  refused(() => parseFwknopAccess('SOURCE ANY\nHMAC_KEY __changeme__\n', path), 2, /placeholder/, 'placeholder');
  refused(() => parseFwknopAccess('SOURCE ANY\nKEY secret \n', path), 2, /ends with blanks/, 'trailing blank in a passphrase');
  refused(() => parseFwknopAccess('SOURCE 10.0.0.0/255.0.255.0\n', path), 1, /not contiguous/, 'netmask');
  refused(() => parseFwknopAccess('SOURCE 10.0.0.0/0\n', path), 1, /ANY/, '/0');
  refused(() => parseFwknopAccess('SOURCE example.com\n', path), 1, /not an address/, 'hostname');
  refused(() => parseFwknopAccess('# nothing\n', path), 1, /no stanza/, 'empty');
});

void test('fwknopd.conf: the port from UDPSERV_PORT or PCAP_FILTER, the packet age, PCAP_INTF; tuning of fwknopd itself ignored', () => {
  const parse = (text: string) => parseFwknopdConf(text, '/etc/fwknop/fwknopd.conf');
  assert.deepEqual(parse('PCAP_FILTER udp port 40001;\nMAX_SPA_PACKET_AGE 30;\nPCAP_INTF eth1;\n'), { port: 40001, maxPacketAgeMs: 30_000, interface: 'eth1' });
  assert.equal(parse('PCAP_FILTER    udp dst port 40002\n').port, 40002);
  assert.equal(parse('PCAP_FILTER port 40003 and udp\n').port, 40003);
  assert.equal(parse('ENABLE_UDP_SERVER Y;\nUDPSERV_PORT 40004;\nPCAP_FILTER udp port 1\n').port, 40004);
  assert.equal(parse('ENABLE_UDP_SERVER Y;\n').port, 62201);
  const tuning = 'VERBOSE 2;\nENABLE_PCAP_PROMISC Y;\nPCAP_LOOP_SLEEP 10;\nIPT_INPUT_ACCESS ACCEPT, filter, INPUT, 1, FWKNOP_INPUT, 1;\nFWKNOP_RUN_DIR /run/fwknop;\nDIGEST_FILE $FWKNOP_RUN_DIR/digest.cache;\nACCESS_FILE /somewhere/access.conf;\nENABLE_SPA_PACKET_AGING Y;\nENABLE_IPT_FORWARDING N;\n';
  assert.deepEqual(parse(tuning), { port: 62201, maxPacketAgeMs: 120_000 });
});

void test('fwknopd.conf settings that would change what a packet may do are refused at their line', () => {
  const cases: [string, RegExp][] = [
    ['ENABLE_SPA_PACKET_AGING N;', /always refuses packets older/],
    ['ENABLE_DIGEST_PERSISTENCE N;', /replay cache/],
    ['ENABLE_IPT_FORWARDING Y;', /NAT/],
    ['ENABLE_IPT_LOCAL_NAT Y;', /NAT/],
    ['ENABLE_SPA_OVER_HTTP Y;', /HTTP/],
    ['ENABLE_TCP_SERVER Y;', /UDP only/],
    ['ENABLE_NFQ_CAPTURE Y;', /nftables rule/],
    ['PCAP_FILE /tmp/spa.pcap;', /test mode/],
    ['ACCESS_FOLDER /etc/fwknop/access.d;', /--fwknop-access/],
    ['PCAP_FILTER udp dst portrange 10000-65535;', /one UDP port/],
    ['MAX_SPA_PACKET_AGE 0;', /1-100000/],
    ['NOT_A_SETTING 1;', /unknown fwknopd\.conf directive/],
    ['PCAP_INTF eth0;\nPCAP_INTF eth1;', /already set at line 2/],
  ];
  for (const [text, re] of cases) {
    const line = text.includes('\n') ? 3 : 2;
    refused(() => parseFwknopdConf(`# fwknopd.conf\n${text}\n`, '/etc/fwknop/fwknopd.conf'), line, re, text);
  }
});
