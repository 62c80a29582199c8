import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileKnockd } from '../../gateway/config/load.ts';
import { isKnockgwError, type ErrorCode } from '../../gateway/core/errors.ts';
import { TCP } from '../../gateway/core/types.ts';
import type { Config } from '../../gateway/config/types.ts';
import type { KnockSequence } from '../../gateway/core/types.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/config/${name}`, import.meta.url));
const read = (name: string): string => readFileSync(fixture(name), 'utf8');
const PATH = '/etc/knockd.conf';

function seq(cfg: Config, id: string): KnockSequence {
  const s = cfg.sequences.find((x) => x.id === id);
  assert.ok(s, `sequence ${id} exists`);
  return s;
}

/** Asserts the error's code, and that its message names the file and line. */
function rejects(text: string, code: ErrorCode, line: number, also?: RegExp): void {
  assert.throws(
    () => compileKnockd(text, PATH, 'gw-a'),
    (err: unknown) => {
      assert.ok(isKnockgwError(err, code), `expected ${code}, got ${String(err)}`);
      assert.match(err.message, new RegExp(`${PATH.replaceAll('/', '\\/')}:${line}: `));
      if (also) assert.match(err.message, also);
      return true;
    },
  );
}

void test("the guide's exact knockd.conf (one-space indents, blank lines holding a space) loads as-is", () => {
  const text = read('knockd-guide.conf');
  const seed = '/work/shared/seed/port-knocking-ubuntu-guide.ko.txt';
  if (existsSync(seed)) assert.equal(text, `${readFileSync(seed, 'utf8').split('\n').slice(134, 148).join('\n')}\n`);
  const cfg = compileKnockd(text, PATH, 'gw-a');
  assert.deepEqual(cfg.source, { kind: 'knockd', path: PATH });
  assert.deepEqual(cfg.interfaces, ['eth0']);
  assert.deepEqual(cfg.doors, [{ name: 'openSSH', open: [{ port: 22, proto: 'tcp' }], ttlMs: 0 }]);
  assert.deepEqual(cfg.protectedPorts, [{ port: 22, proto: 'tcp' }]);
  const open = seq(cfg, 'openSSH');
  assert.deepEqual(open.ports.map((p) => p.port), [7000, 8000, 9000]);
  assert.ok(open.ports.every((p) => p.proto === 'tcp'));
  assert.equal(open.timeoutMs, 5000);
  assert.deepEqual(open.tcpFlags, { require: TCP.SYN, forbid: 0 });
  assert.deepEqual(open.action, { kind: 'open' });
  assert.equal(open.origin, `${PATH}:4`);
  const close = seq(cfg, 'closeSSH');
  assert.equal(close.door, 'openSSH', 'the -D section closes the door that opens the same port');
  assert.deepEqual(close.action, { kind: 'close' });
  assert.deepEqual(close.ports.map((p) => p.port), [9000, 8000, 7000]);
  assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.sequences) && Object.isFrozen(open.ports[0]), 'deep-frozen');
});

void test('the guide with IPv6 command_6 variants compiles to the same native door', () => {
  const cfg = compileKnockd(read('knockd-guide-ipv6.conf'), PATH, 'gw-a');
  assert.deepEqual(cfg.doors, [{ name: 'openSSH', open: [{ port: 22, proto: 'tcp' }], ttlMs: 0 }]);
  assert.deepEqual(seq(cfg, 'openSSH').action, { kind: 'open' });
  assert.deepEqual(seq(cfg, 'closeSSH').action, { kind: 'close' });
  assert.equal(seq(cfg, 'closeSSH').door, 'openSSH');
});

void test('every knockd option is read: options section, aliases, case-insensitive names, udp ports, flags, target, one-time sequences, commands', () => {
  const cfg = compileKnockd(read('knockd-all-options.conf'), PATH, 'gw-a');
  assert.deepEqual(cfg.interfaces, ['ens5']);
  assert.equal(cfg.log.file, '/var/log/knockd.log');

  const ssh = seq(cfg, 'opencloseSSH');
  assert.deepEqual(ssh.ports, [{ port: 2222, proto: 'udp' }, { port: 3333, proto: 'tcp' }, { port: 4444, proto: 'udp' }]);
  assert.equal(ssh.timeoutMs, 15000);
  assert.deepEqual(ssh.tcpFlags, { require: TCP.SYN, forbid: TCP.ACK });
  assert.deepEqual(ssh.action, { kind: 'open' }, 'start/stop iptables pair is an intent');
  assert.deepEqual(cfg.doors.find((d) => d.name === 'opencloseSSH'), { name: 'opencloseSSH', open: [{ port: 22, proto: 'tcp' }], ttlMs: 30000 });
  assert.deepEqual(cfg.protectedPorts, [{ port: 22, proto: 'tcp' }]);

  const smtp = seq(cfg, 'opencloseSMTP');
  assert.equal(smtp.oneTimeSequencesFile, '/etc/knockd/smtp_sequences');
  assert.deepEqual(smtp.ports, []);
  assert.equal(smtp.timeoutMs, 20000, '"timeout" is an alias of seq_timeout');
  assert.deepEqual(smtp.tcpFlags, { require: TCP.FIN, forbid: TCP.ACK });
  assert.equal(smtp.target, '192.0.2.10');
  assert.deepEqual(smtp.action, {
    kind: 'command',
    start: { text: `/usr/local/sbin/smtp-door open '%IP%' "port 25"`, argv: ['/usr/local/sbin/smtp-door', 'open', '%IP%', 'port 25'], argv6: [] },
    stop: { text: '/usr/local/sbin/smtp-door close %IP%', argv: ['/usr/local/sbin/smtp-door', 'close', '%IP%'] },
    stopAfterMs: 5000,
  });

  const wake = seq(cfg, 'wake');
  assert.equal(wake.timeoutMs, 25000, "knockd's default seq_timeout");
  assert.deepEqual(wake.tcpFlags, { require: 0, forbid: 0 }, 'no tcpflags = any packet');
  assert.deepEqual(wake.action, { kind: 'command', start: { text: '/usr/bin/wakeonlan 00:11:22:33:44:55', argv: ['/usr/bin/wakeonlan', '00:11:22:33:44:55'] } });
  assert.deepEqual(cfg.doors.find((d) => d.name === 'wake'), { name: 'wake', open: [], ttlMs: 0 });
});

void test("start_command with a stop_command uses knockd's 10 s cmd_timeout as the grant's ttl", () => {
  const cfg = compileKnockd(
    '[door]\nsequence = 1,2\nstart_command = iptables -A INPUT -s %IP% -p udp --dport 5353 -j ACCEPT\nstop_command = iptables -D INPUT -s %IP% -p udp --dport 5353 -j ACCEPT\n',
    PATH, 'gw-a',
  );
  assert.deepEqual(cfg.doors, [{ name: 'door', open: [{ port: 5353, proto: 'udp' }], ttlMs: 10000 }]);
  assert.deepEqual(cfg.protectedPorts, [{ port: 5353, proto: 'udp' }]);
});

void test('a config whose doors only run commands protects 22/tcp by default', () => {
  const cfg = compileKnockd('[w]\nsequence = 1,2\ncommand = /usr/bin/logger knock %IP%\n', PATH, 'gw-a');
  assert.deepEqual(cfg.protectedPorts, [{ port: 22, proto: 'tcp' }]);
});

void test('an iptables -D with no door opening that port runs as the command it is', () => {
  const cfg = compileKnockd('[close]\nsequence = 3,2,1\ncommand = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT\n', PATH, 'gw-a');
  assert.equal(seq(cfg, 'close').action.kind, 'command');
});

void test('malformed knockd.conf: each error names the code, file and line', () => {
  rejects('[options]\n UseSyslog\n Bogus = 1\n', 'KGW_CONFIG_KNOCKD', 3, /unknown option "bogus"/);
  rejects('[d]\n sequence = 7000,99999\n', 'KGW_CONFIG_KNOCKD', 2, /"99999" is not a knock port.*1-65535/);
  rejects('[d]\n sequence = 7000,abc\n', 'KGW_CONFIG_KNOCKD', 2, /"abc"/);
  rejects('[d]\n sequence = 7000:icmp\n', 'KGW_CONFIG_KNOCKD', 2, /PORT:udp/);
  rejects('[d]\n sequence = 0\n', 'KGW_CONFIG_KNOCKD', 2);
  rejects('[options]\n UseSyslog\n\n[d]\n seq_timeout = 5\n', 'KGW_CONFIG_KNOCKD', 4, /\[d\] has no sequence/);
  rejects('[d]\n sequence = 1,2\n tcpflags = syn,foo\n', 'KGW_CONFIG_KNOCKD', 3, /"foo".*syn,!ack/);
  rejects('[d]\n sequence = 1,2\n tcpflags = syn,!syn\n', 'KGW_CONFIG_KNOCKD', 3, /requires and forbids/);
  rejects('[d]\n sequence = 1,2\n seq_timeout = five\n', 'KGW_CONFIG_KNOCKD', 3, /seq_timeout/);
  rejects('[d]\n sequence = 1,2\n target = not-an-ip\n', 'KGW_CONFIG_KNOCKD', 3, /target/);
  rejects(' sequence = 1,2\n', 'KGW_CONFIG_KNOCKD', 1, /outside any section/);
  rejects('[d]\n sequence = 1,2\n logfile = /x\n', 'KGW_CONFIG_KNOCKD', 3, /belongs in \[options\]/);
  rejects('[Options]\n logfile = /x\n', 'KGW_CONFIG_KNOCKD', 2, /lower-case/);
  rejects('[d]\n sequence = 1,2\n[d]\n sequence = 3,4\n', 'KGW_CONFIG_KNOCKD', 3, /already defined at line 1/);
  rejects('[d]\n sequence 1,2\n', 'KGW_CONFIG_KNOCKD', 2, /name = value/);
  rejects('[options]\n UseSyslog = yes\n', 'KGW_CONFIG_KNOCKD', 2, /no value/);
  rejects('[d]\n sequence = 1,2\n start_command = /bin/true\n cmd_timeout = 0\n stop_command = /bin/true\n', 'KGW_CONFIG_KNOCKD', 4, /at least 1/);
});

void test('a %IP% command with shell syntax is rejected at load time with file:line and a script hint', () => {
  const bad = [
    '/sbin/iptables -A INPUT -s %IP% -j ACCEPT; rm -rf /',
    '/sbin/iptables -A INPUT -s %IP% -j ACCEPT && logger ok',
    'echo %IP% | logger',
    'echo %IP% > /tmp/x',
    'logger $(id) %IP%',
    'logger `id` %IP%',
    'logger "$HOME" %IP%',
    'rm /tmp/*.%IP%',
    'FOO=1 logger %IP%',
    'if true',
  ];
  for (const command of bad) {
    rejects(`[options]\n UseSyslog\n[d]\n sequence = 1,2\n command = ${command}\n`, 'KGW_CMD_INVALID', 5, /script/);
  }
  rejects('[d]\n sequence = 1,2\n stop_command_6 = a ; b\n', 'KGW_CMD_INVALID', 3, /";"/);
});

void test('quoted shell characters are plain arguments, as in a shell', () => {
  const cfg = compileKnockd(`[d]\nsequence = 1,2\ncommand = /usr/bin/logger -t knock 'door; opened' "for %IP%"\n`, PATH, 'gw-a');
  const action = seq(cfg, 'd').action;
  assert.equal(action.kind, 'command');
  if (action.kind === 'command') assert.deepEqual(action.start.argv, ['/usr/bin/logger', '-t', 'knock', 'door; opened', 'for %IP%']);
});

void test('a knockd.conf without a door is refused (it would close port 22 with no way in), naming the file', () => {
  for (const text of ['', '[options]\n UseSyslog\n', '# nothing but comments\n']) {
    assert.throws(() => compileKnockd(text, PATH, 'gw-a'), (e: unknown) => isKnockgwError(e, 'KGW_CONFIG_KNOCKD') && e.message.includes(PATH) && /no door/.test(e.message));
  }
});

void test('timeouts beyond what the kernel and Node timers hold are refused with file:line, not clamped at run time', () => {
  const door = (cmdTimeout: number) => `[open]\n sequence = 7000,8000\n start_command = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n stop_command = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n cmd_timeout = ${cmdTimeout}\n`;
  rejects(door(9_999_999), 'KGW_CONFIG_KNOCKD', 5, /at most 2147483 s/);
  rejects(door(4_320_000), 'KGW_CONFIG_KNOCKD', 5, /at most/);
  rejects('[open]\n sequence = 7000,8000\n seq_timeout = 3000000\n command = /usr/bin/logger %IP%\n', 'KGW_CONFIG_KNOCKD', 3, /seq_timeout/);
  assert.equal(compileKnockd(door(2_147_483), PATH, 'gw-a').doors[0]?.ttlMs, 2_147_483_000);
});
