import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runCommand } from '../../gateway/adapters/exec/index.ts';
import { compileCommand } from '../../gateway/core/command-intent.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import type { CommandSpec } from '../../gateway/core/types.ts';

function capture(): { logger: ReturnType<typeof createLogger>; events: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', format: 'json', destination }), events: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const spec = (text: string, text6?: string): CommandSpec => ({
  text,
  argv: compileCommand(text, 'test:1').argv,
  ...(text6 !== undefined ? { argv6: compileCommand(text6, 'test:2').argv } : {}),
});

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-cmd-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

void test('runCommand runs the argv with the validated IP substituted, no shell involved', async () => {
  const { logger, events } = capture();
  const r = await runCommand(spec(`/bin/echo open '%IP%' --src=%IP%/32 ';' '$(id)'`), '203.0.113.7', 4, { timeoutMs: 5000, logger });
  assert.deepEqual(r, { code: 0, stdout: 'open 203.0.113.7 --src=203.0.113.7/32 ; $(id)\n', stderr: '' });
  const exit = events().find((e) => e.event === 'command.exit');
  assert.equal(exit?.code, 0);
  assert.equal(exit?.program, '/bin/echo');
});

void test('a hostile "ip" is refused before anything runs', async (t) => {
  const dir = await tempDir(t);
  const { logger, events } = capture();
  // If this ran, it would leave a file behind.
  const marker = spec(`/usr/bin/touch ${dir}/ran-%IP%`);
  const hostile = ['1.2.3.4;rm -rf /', '$(id)', '`id`', '1.2.3.4 -j ACCEPT', '-s', '0.0.0.0/0', '1.2.3.4/0', '', '::1%eth0', '1.2.3.4\n5.6.7.8'];
  for (const ip of hostile) {
    await assert.rejects(runCommand(marker, ip, 4, { timeoutMs: 5000, logger }), (e: unknown) => isKnockgwError(e, 'KGW_IP_INVALID'), JSON.stringify(ip));
  }
  for (const [ip, family] of [['0.0.0.0', 4], ['127.0.0.1', 4], ['224.0.0.1', 4], ['::', 6], ['::1', 6], ['ff02::1', 6]] as const) {
    await assert.rejects(runCommand(marker, ip, family, { timeoutMs: 5000, logger }), (e: unknown) => isKnockgwError(e, 'KGW_IP_REFUSED'), ip);
  }
  await assert.rejects(runCommand(marker, '2001:db8::1', 4, { timeoutMs: 5000, logger }), (e: unknown) => isKnockgwError(e, 'KGW_IP_INVALID') && /IPv6/.test(e.message));
  assert.deepEqual(await readdir(dir), [], 'nothing ran');
  assert.equal(events().filter((e) => e.event === 'command.run').length, 0);
});

void test('IPv6 knocks use the _6 command; an iptables-only command refuses IPv6 with a clear error', async (t) => {
  const { logger } = capture();
  const both = spec('/bin/echo v4 %IP%', '/bin/echo v6 %IP%');
  assert.equal((await runCommand(both, '2001:DB8::0:1', 6, { timeoutMs: 5000, logger })).stdout, 'v6 2001:db8::1\n', 'canonical address substituted');
  assert.equal((await runCommand(both, '198.51.100.2', 4, { timeoutMs: 5000, logger })).stdout, 'v4 198.51.100.2\n');
  // knockd's fallback: without a _6 command the IPv4 one runs for IPv6 too, unless it is iptables.
  assert.equal((await runCommand(spec('/bin/echo any %IP%'), '2001:db8::2', 6, { timeoutMs: 5000, logger })).stdout, 'any 2001:db8::2\n');
  const dir = await tempDir(t);
  const iptablesOnly = spec(`/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT`);
  await assert.rejects(runCommand(iptablesOnly, '2001:db8::3', 6, { timeoutMs: 5000, logger }), (e: unknown) =>
    isKnockgwError(e, 'KGW_CMD_INVALID') && /IPv4/.test(e.message) && /command_6/.test(e.message) && /ip6tables/.test(e.message));
  await assert.rejects(runCommand(spec('/sbin/ip6tables -L'), '198.51.100.3', 4, { timeoutMs: 5000, logger }), (e: unknown) => isKnockgwError(e, 'KGW_CMD_INVALID'));
  // An empty command_6 means "do nothing for IPv6", as in knockd.
  const nothing6: CommandSpec = { text: `/usr/bin/touch ${dir}/x`, argv: ['/usr/bin/touch', `${dir}/x`], argv6: [] };
  assert.deepEqual(await runCommand(nothing6, '2001:db8::4', 6, { timeoutMs: 5000, logger }), { code: 0, stdout: '', stderr: '' });
  assert.equal(existsSync(join(dir, 'x')), false);
});

void test('a non-zero exit is returned and logged as a warning', async () => {
  const { logger, events } = capture();
  const r = await runCommand(spec('/bin/sh -c "echo nope >&2; exit 3"'), '192.0.2.1', 4, { timeoutMs: 5000, logger });
  assert.equal(r.code, 3);
  assert.equal(r.stderr, 'nope\n');
  const exit = events().find((e) => e.event === 'command.exit');
  assert.equal(exit?.level, 40);
  assert.equal(exit?.stderr, 'nope\n');
});

void test('a missing program and a command past its deadline are KGW_CMD_FAILED, and the deadline kills the whole process group', async () => {
  const { logger } = capture();
  await assert.rejects(runCommand(spec('/nonexistent/knock-open %IP%'), '192.0.2.1', 4, { timeoutMs: 5000, logger }), (e: unknown) =>
    isKnockgwError(e, 'KGW_CMD_FAILED') && /no such program/.test(e.message));
  const started = Date.now();
  // The grandchild keeps stdout open; only killing the group lets the call return.
  await assert.rejects(runCommand(spec('/bin/sh -c "sleep 30 & sleep 30"'), '192.0.2.1', 4, { timeoutMs: 200, logger, killGraceMs: 200 }), (e: unknown) =>
    isKnockgwError(e, 'KGW_CMD_FAILED') && /within 200 ms/.test(e.message));
  const took = Date.now() - started;
  assert.ok(took < 3000, `returned after ${took} ms`);
});
