import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitWords } from '../../gateway/core/shell-words.ts';
import { commandIntent, compileCommand } from '../../gateway/core/command-intent.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';

function words(text: string): readonly string[] {
  const r = splitWords(text);
  assert.ok(r.ok, `"${text}" splits`);
  return r.words;
}

void test('commands split into argv like a POSIX word list, without expansion', () => {
  assert.deepEqual(words('/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'), ['/sbin/iptables', '-A', 'INPUT', '-s', '%IP%', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
  assert.deepEqual(words(`  a\t 'b c'  "d e" f\\ g  `), ['a', 'b c', 'd e', 'f g']);
  assert.deepEqual(words(`'it''s' "say \\"hi\\"" "a\\b" '$HOME;*'`), ['its', 'say "hi"', 'a\\b', '$HOME;*']);
  assert.deepEqual(words(`x '' ""`), ['x', '', '']);
  assert.deepEqual(words('a#b --opt=%IP% 10:00'), ['a#b', '--opt=%IP%', '10:00']);
  assert.deepEqual(words(''), []);
});

void test('anything a shell would interpret is refused with the reason and its column', () => {
  const cases: [string, RegExp, number][] = [
    ['a; b', /";"/, 2],
    ['a && b', /"&"/, 3],
    ['a | b', /pipe/, 3],
    ['a > f', /redirection/, 3],
    ['a < f', /redirection/, 3],
    ['a $(id)', /\$\(/, 3],
    ['a "$(id)"', /\$\(/, 4],
    ['a `id`', /`/, 3],
    ['a "x`id`"', /`/, 5],
    ['a $HOME', /variable/, 3],
    ['a *.log', /glob/, 3],
    ['a f?', /glob/, 4],
    ['a [ab]', /glob/, 3],
    ['a {b,c}', /brace/, 3],
    ['a ~/x', /tilde/, 3],
    ['a # note', /comment/, 3],
    ['a\nb', /newline/, 2],
    ["a 'b", /unterminated single/, 3],
    ['a "b', /unterminated double/, 3],
    ['a \\', /trailing backslash/, 3],
    ['a (b)', /subshell/, 3],
  ];
  for (const [text, reason, column] of cases) {
    const r = splitWords(text);
    assert.equal(r.ok, false, text);
    if (!r.ok) {
      assert.match(r.reason, reason, text);
      assert.equal(r.index + 1, column, text);
    }
  }
});

void test('compileCommand turns refusals into KGW_CMD_INVALID naming where the command came from', () => {
  assert.throws(() => compileCommand('iptables -A INPUT -s %IP% -j ACCEPT; reboot', '/etc/knockd.conf:7'), (e: unknown) =>
    isKnockgwError(e, 'KGW_CMD_INVALID') && e.message.includes('/etc/knockd.conf:7') && /column 36/.test(e.message) && /script/.test(e.message));
  assert.throws(() => compileCommand('PATH=/tmp iptables', 'x:1'), (e: unknown) => isKnockgwError(e, 'KGW_CMD_INVALID') && /environment assignment/.test(e.message));
  assert.throws(() => compileCommand('exec /bin/true', 'x:1'), (e: unknown) => isKnockgwError(e, 'KGW_CMD_INVALID') && /not a program/.test(e.message));
  assert.deepEqual(compileCommand('', 'x:1').argv, []);
});

void test('the iptables idiom is understood as intent in every spelling knockd guides use', () => {
  const open = { kind: 'open', family: 4, port: { port: 22, proto: 'tcp' } };
  const intent = (text: string) => commandIntent(compileCommand(text, 'x:1').argv);
  assert.deepEqual(intent('/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'), open);
  assert.deepEqual(intent('/usr/sbin/iptables -I INPUT 1 -s %IP% -p tcp --dport 22 -j ACCEPT'), open);
  assert.deepEqual(intent('iptables -w --insert INPUT --source %IP% --protocol tcp -m tcp --destination-port 22 --jump ACCEPT'), open);
  assert.deepEqual(intent('iptables -p tcp --dport 22 -A INPUT -j ACCEPT -s %IP%'), open);
  assert.deepEqual(intent('/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'), { ...open, kind: 'close' });
  assert.deepEqual(intent('/sbin/ip6tables -A INPUT -s %IP% -p udp --dport 53 -j ACCEPT'), { kind: 'open', family: 6, port: { port: 53, proto: 'udp' } });
  for (const other of [
    '/usr/sbin/iptables -A INPUT -s %IP% --dport 22 -j ACCEPT', // no -p: iptables itself rejects --dport
    '/usr/sbin/iptables -A INPUT -s %IP% -p tcp --syn -j ACCEPT', // every port, not one
    'iptables -A FORWARD -s %IP% -p tcp --dport 22 -j ACCEPT',
    'iptables -A INPUT -s 10.0.0.1 -p tcp --dport 22 -j ACCEPT',
    'iptables -A INPUT -s %IP% -p tcp --dport 22 -j DROP',
    'iptables -A INPUT -s %IP% -p tcp --dport 0 -j ACCEPT',
    'iptables -A INPUT -s %IP% -p tcp -m udp --dport 22 -j ACCEPT',
    'iptables -t nat -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT',
    '/opt/bin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT',
    '/usr/bin/logger %IP%',
  ]) {
    assert.equal(intent(other), undefined, other);
  }
});
