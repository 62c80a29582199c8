// The phone commands' command lines: enroll, devices, ssh (parsing and usage errors only; the
// e2e tests run them for real).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommand } from '../../gateway/cli.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';

const usage = (args: string[]) => assert.throws(() => parseCommand(args), (e: unknown) => isKnockgwError(e, 'KGW_CLI_USAGE'), args.join(' '));

void test('enroll takes a door, an optional relay URL, name and lifetime', () => {
  assert.deepEqual(parseCommand(['enroll', '--door', 'openSSH', '--relay', 'https://knock.example', '--name', 'pixel', '--expires', '15m']),
    { cmd: 'enroll', door: 'openSSH', relay: 'https://knock.example', name: 'pixel', ttlMs: 900_000, control: '/run/knockgw.sock' });
  assert.equal((parseCommand(['enroll', '--door', 'd', '--expires', '2h']) as { ttlMs: number }).ttlMs, 7_200_000);
  usage(['enroll']);
  usage(['enroll', '--door', 'd', '--expires', '15 minutes']);
  usage(['enroll', '--door', 'd', '--relay', 'knock.example']);
});

void test('devices list|revoke ID', () => {
  assert.deepEqual(parseCommand(['devices', 'list', '--json']), { cmd: 'devices', action: 'list', json: true, control: '/run/knockgw.sock' });
  assert.deepEqual(parseCommand(['devices', 'revoke', 'd-abcdefghijkl']), { cmd: 'devices', action: 'revoke', id: 'd-abcdefghijkl', json: false, control: '/run/knockgw.sock' });
  usage(['devices']);
  usage(['devices', 'revoke']);
  usage(['devices', 'remove', 'x']);
});

void test('ssh HOST [PORT] with a relay or a sequence, as ssh passes %h %p', () => {
  assert.deepEqual(parseCommand(['ssh', 'host.example', '2222', '--relay', 'https://r.example', '--key', 'k.json', '--door', 'openSSH']),
    { cmd: 'ssh', host: 'host.example', port: 2222, waitMs: 10_000, relay: { url: 'https://r.example', keyFile: 'k.json', door: 'openSSH' } });
  const seq = parseCommand(['ssh', '-6', 'h', '--sequence', '7000,8000,9000:udp', '--wait', '5s']);
  assert.deepEqual(seq, { cmd: 'ssh', host: 'h', port: 22, waitMs: 5000, family: 6, sequence: [{ port: 7000, proto: 'tcp' }, { port: 8000, proto: 'tcp' }, { port: 9000, proto: 'udp' }] });
  assert.equal((parseCommand(['ssh', 'h', '--spa', '/home/u/.fwknoprc']) as { spaFile: string }).spaFile, '/home/u/.fwknoprc');
  usage(['ssh', 'h', '--spa', 'f', '--sequence', '1,2']);
  usage(['ssh']);
  usage(['ssh', 'h', '70000']);
  usage(['ssh', 'h', '--relay', 'https://r.example']);
  usage(['ssh', 'h', '--relay', 'https://r.example', '--key', 'k']);
  usage(['ssh', 'h', '--relay', 'https://r.example', '--key', 'k', '--door', 'd', '--sequence', '1,2']);
});

void test('doctor says whether phones get a secure context and both families', async () => {
  const { knockPageFinding } = await import('../../gateway/commands/doctor.ts');
  type Cfg = Parameters<typeof knockPageFinding>[0];
  const cfg = (relay: Record<string, unknown> | undefined) => ({ relay }) as unknown as Cfg;
  assert.equal(knockPageFinding(cfg(undefined)), undefined);
  assert.equal(knockPageFinding(cfg({ keysFile: '/k', listen: '[::]:8443' }))?.level, 'warn');
  assert.equal(knockPageFinding(cfg({ keysFile: '/k', listen: '[::]:8443', publicUrls: { v4: 'http://v4.example' } }))?.level, 'warn');
  const ok = knockPageFinding(cfg({ keysFile: '/k', listen: '[::]:8443', tls: { certFile: '/c', keyFile: '/k' }, publicUrls: { v4: 'https://v4.example', v6: 'https://v6.example' } }));
  assert.deepEqual([ok?.level, ok?.text], ['ok', 'knock page: phones knock over IPv4 and IPv6 through https://v4.example, https://v6.example']);
  assert.equal(knockPageFinding(cfg({ keysFile: '/k', listen: '[::]:8443', tls: { certFile: '/c', keyFile: '/k' } }))?.level, 'warn');
});
