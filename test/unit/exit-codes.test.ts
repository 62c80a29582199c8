// Every documented error code and its exit status: the README's table is the contract, and real
// command lines that fail the way users make them fail exit as it says, with a coded one-line
// message and never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, exitStatusFor, kgwError, type ErrorCode } from '../../gateway/core/errors.ts';
import { GUIDE_KNOCKD_CONF, MAIN } from '../helpers/gateway.ts';

const execFileP = promisify(execFile);
const README = new URL('../../README.md', import.meta.url);

async function cli(args: readonly string[], script = MAIN): Promise<{ code: number; stderr: string }> {
  try {
    await execFileP(process.execPath, [script, ...args], { timeout: 20_000 });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

void test("the README's error table lists every code with the exit status the CLI uses", async () => {
  const readme = await readFile(README, 'utf8');
  const rows = new Map([...readme.matchAll(/^\| `(KGW_[A-Z_]+)` \| [^|]+ \| (\d+) \|$/gm)].map((m) => [m[1] ?? '', Number(m[2])]));
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    assert.equal(rows.get(code), exitStatusFor(kgwError(code, '')), `${code}: README row and exitStatusFor() agree`);
  }
  assert.equal(rows.size, Object.keys(ERROR_CODES).length, 'no row for a code that does not exist');
});

void test('command lines that fail exit 64 (usage) or 78 (config) with the code, the file and no stack', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-exit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = async (name: string, text: string): Promise<string> => {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  };
  const door = 'doors:\n  - name: ssh\n    sequence: [7000, 8000]\n';
  const aliasBomb = `a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n${door}`;
  await mkdir(join(dir, 'logdir'));
  const script = (rel: string): string => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
  const cases: { what: string; args: string[]; exit: number; code: ErrorCode; mentions?: string; script?: string; prefix?: string }[] = [
    { what: 'unknown command', args: ['frobnicate'], exit: 64, code: 'KGW_CLI_USAGE' },
    { what: 'a knock port out of range', args: ['knock', 'gw.example', '70000'], exit: 64, code: 'KGW_CLI_USAGE' },
    { what: '-6 with an IPv4 literal', args: ['knock', '-6', '192.0.2.1', '7000'], exit: 64, code: 'KGW_CLI_USAGE', mentions: 'IPv4' },
    { what: 'a missing config file', args: ['daemon', '--config', join(dir, 'nope.yaml')], exit: 78, code: 'KGW_CONFIG_READ', mentions: 'nope.yaml' },
    { what: 'a YAML alias bomb', args: ['daemon', '--config', await file('bomb.yaml', aliasBomb)], exit: 78, code: 'KGW_CONFIG_INVALID', mentions: 'bomb.yaml' },
    { what: 'a log file that is a directory', args: ['daemon', '--config', await file('log.yaml', `${door}log: { file: ${join(dir, 'logdir')} }\n`)], exit: 78, code: 'KGW_CONFIG_INVALID', mentions: 'logdir' },
    { what: 'a knockd.conf without a door', args: ['daemon', '--knockd-config', await file('empty.conf', '[options]\n UseSyslog\n')], exit: 78, code: 'KGW_CONFIG_KNOCKD', mentions: 'empty.conf' },
    { what: 'a knockd.conf command with shell syntax', args: ['daemon', '--knockd-config', await file('shell.conf', '[open]\n sequence = 7000,8000\n command = /usr/bin/logger %IP%; rm -rf /\n')], exit: 78, code: 'KGW_CMD_INVALID', mentions: 'shell.conf:3' },
    { what: 'a cmd_timeout knockgw cannot hold', args: ['daemon', '--knockd-config', await file('long.conf', GUIDE_KNOCKD_CONF.replace(' seq_timeout = 5\n command', ' seq_timeout = 5\n cmd_timeout = 9999999\n command'))], exit: 78, code: 'KGW_CONFIG_KNOCKD', mentions: 'long.conf:' },
    { what: "knockd's --config with a knockd.conf", args: ['daemon', '--config', await file('knockd.conf', GUIDE_KNOCKD_CONF)], exit: 78, code: 'KGW_CONFIG_INVALID', mentions: 'pass it with -c or --knockd-config' },
    { what: 'no daemon on the control socket', args: ['status', '--control', join(dir, 'none.sock')], exit: 1, code: 'KGW_CONTROL' },
    { what: 'a knock sequence that is not ports', args: ['ssh', 'h', '--sequence', '7000,abc'], exit: 64, code: 'KGW_CLI_USAGE', mentions: '"abc"' },
    { what: 'revoke of something that is not an address', args: ['revoke', '1.2.3', '--control', join(dir, 'none.sock')], exit: 64, code: 'KGW_CLI_USAGE', mentions: '"1.2.3"' },
    { what: 'a daemon option misspelt', args: ['daemon', '--confg', 'x'], exit: 64, code: 'KGW_CLI_USAGE', mentions: 'try knockgw daemon --help' },
    { what: 'deploy:aws with a misspelt option', args: ['--regoin', 'x'], exit: 64, code: 'KGW_DEPLOY_USAGE', mentions: '--regoin', script: script('scripts/deploy/aws.ts'), prefix: 'knockgw deploy:aws' },
    { what: 'deploy:aws without --keys', args: ['--region', 'x'], exit: 64, code: 'KGW_DEPLOY_USAGE', mentions: '--keys', script: script('scripts/deploy/aws.ts'), prefix: 'knockgw deploy:aws' },
    { what: 'deploy:gcp with a misspelt option', args: ['--projcet', 'x'], exit: 64, code: 'KGW_DEPLOY_USAGE', mentions: '--projcet', script: script('scripts/deploy/gcp.ts'), prefix: 'knockgw deploy:gcp' },
    { what: 'iam with a missing config', args: ['aws', '--config', join(dir, 'nonexistent.yaml'), '--account', '123456789012'], exit: 78, code: 'KGW_CONFIG_READ', mentions: 'nonexistent.yaml', script: script('scripts/iam.ts'), prefix: 'knockgw iam' },
    { what: 'iam with a misspelt option', args: ['aws', '--acount', '1'], exit: 64, code: 'KGW_CLI_USAGE', mentions: '--acount', script: script('scripts/iam.ts'), prefix: 'knockgw iam' },
  ];
  for (const c of cases) {
    const r = await cli(c.args, c.script);
    assert.equal(r.code, c.exit, `${c.what}: exit status (stderr: ${r.stderr})`);
    assert.match(r.stderr, new RegExp(`^${c.prefix ?? 'knockgw'}: ${c.code}: `), `${c.what}: coded message`);
    assert.ok(r.stderr.split('\n').length <= 5, `${c.what}: a few lines, not the whole usage: ${r.stderr}`);
    if (c.mentions) assert.ok(r.stderr.includes(c.mentions), `${c.what}: names ${c.mentions} in ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${c.what}: no stack trace`);
  }
});

void test('--help of the deploy and iam scripts prints their usage and exits 0', async () => {
  for (const rel of ['scripts/deploy/aws.ts', 'scripts/deploy/gcp.ts', 'scripts/iam.ts']) {
    const r = await execFileP(process.execPath, [fileURLToPath(new URL(`../../${rel}`, import.meta.url)), '--help'], { timeout: 20_000 });
    assert.match(r.stdout, /^usage: npm run (deploy:aws|deploy:gcp|iam) -- /, rel);
  }
});
