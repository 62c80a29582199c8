// The help table (gateway/cli/help.ts) is the one source of every command's help, usage line and
// completion: each command answers --help with its own synopsis and options (exit 0), a usage
// error is a few lines that point there (exit 64), --version prints package.json's version, and
// the bash completion script generated from the table parses and completes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { COMMANDS } from '../../gateway/cli/help.ts';
import { parseCommand } from '../../gateway/cli.ts';
import { isKnockgwError } from '../../gateway/core/errors.ts';
import { bashCompletion } from '../../gateway/cli/completion.ts';
import { minimumNode, nodeSatisfies } from '../../gateway/commands/package-info.ts';
import { nodeFinding } from '../../gateway/commands/doctor.ts';
import { MAIN } from '../helpers/gateway.ts';

const execFileP = promisify(execFile);
const run = (args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  execFileP(process.execPath, [MAIN, ...args], { timeout: 20_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

void test('--version and -V print the version of package.json and exit 0', async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = await run([flag]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `knockgw ${pkg.version}\n`);
  }
});

void test('every command has its own --help and -h: its synopsis, every option of the table, exit 0', async () => {
  for (const c of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      const r = await run(c.name === 'help' ? ['help', 'status'] : [c.name, flag]);
      assert.equal(r.code, 0, `${c.name} ${flag}: ${r.stderr}`);
      if (c.name === 'help') continue;
      assert.ok(r.stdout.startsWith(`usage: knockgw ${c.synopsis[0] ?? ''}\n`), `${c.name}: synopsis first:\n${r.stdout}`);
      for (const o of c.options) assert.ok(r.stdout.includes(`--${o.long}`), `${c.name} --help lists --${o.long}`);
    }
  }
});

void test('every option in the help table is one the parser takes (the table cannot promise a flag that fails)', () => {
  for (const c of COMMANDS) {
    for (const o of c.options) {
      // -d is documented as refused: it is taken, and refused on purpose.
      const argv = [c.name, ...(c.words?.[0] ? [c.words[0]] : []), `--${o.long}`, ...(o.arg ? [o.choices?.[0] ?? 'x'] : [])];
      try {
        parseCommand(argv);
      } catch (err) {
        assert.ok(isKnockgwError(err, 'KGW_CLI_USAGE'), `${argv.join(' ')}: ${String(err)}`);
        assert.doesNotMatch((err as Error).message, /Unknown option/, `${argv.join(' ')} is in the table but not in the parser`);
      }
    }
  }
});

void test('a usage error is one line naming the problem, the usage line and "try knockgw CMD --help" (exit 64)', async () => {
  for (const [args, named] of [[['status', '--bogus'], "'--bogus'"], [['knock'], 'knock'], [['revoke', '1.2.3'], '"1.2.3"'], [['daemon', '-d'], 'daemonize']] as const) {
    const r = await run(args);
    assert.equal(r.code, 64, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^knockgw: KGW_CLI_USAGE: /);
    assert.ok(lines[0]?.includes(named), `${args.join(' ')} names ${named}: ${lines[0] ?? ''}`);
    assert.ok(lines.some((l) => l.startsWith(`usage: knockgw ${args[0]}`)), r.stderr);
    assert.equal(lines.at(-1), `try knockgw ${args[0]} --help`);
    assert.ok(lines.length <= 5, `short: ${r.stderr}`);
  }
});

void test('knockd flags: -c picks the format by name, -i is the interface, -D debug', () => {
  const a = parseCommand(['daemon', '-c', '/etc/knockd.conf', '-i', 'eth1', '-D', '-v', '-p', '/run/knockd.pid', '-g', '/var/log/knockd.log']);
  assert.ok(a.cmd === 'daemon');
  assert.deepEqual(a.source, { knockdPath: '/etc/knockd.conf' });
  assert.deepEqual(a.overrides, { interface: 'eth1', logLevel: 'debug', pidFile: '/run/knockd.pid', logFile: '/var/log/knockd.log' });
  for (const [flag, named] of [['-d', 'daemonize'], ['-l', 'DNS'], ['-4', 'IPv4 only']] as const) {
    assert.throws(() => parseCommand(['daemon', '-c', '/etc/knockd.conf', flag]), (e: unknown) => isKnockgwError(e, 'KGW_CLI_USAGE') && (e as Error).message.includes(named), flag);
  }
  const b = parseCommand(['daemon', '-c', '/etc/knockgw/knockgw.yaml']);
  assert.ok(b.cmd === 'daemon');
  assert.deepEqual(b.source, { yamlPath: '/etc/knockgw/knockgw.yaml' });
  const none = parseCommand(['daemon']);
  assert.ok(none.cmd === 'daemon');
  assert.deepEqual(none.source, {}, 'no file named: the daemon looks for the defaults');
});

void test('the bash completion script parses and completes commands, options and choices', async () => {
  const script = bashCompletion();
  await execFileP('bash', ['-n', '-c', script]);
  const complete = async (words: string[]): Promise<string[]> => {
    const probe = `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _knockgw; printf '%s\\n' "\${COMPREPLY[@]}"`;
    return (await execFileP('bash', ['-c', probe])).stdout.split('\n').filter(Boolean);
  };
  assert.deepEqual(await complete(['knockgw', 'sta']), ['status']);
  assert.ok((await complete(['knockgw', 'daemon', '--eng'])).includes('--engine'));
  assert.deepEqual(await complete(['knockgw', 'daemon', '--engine', '']), ['auto', 'kernel', 'pcap']);
  assert.deepEqual(await complete(['knockgw', 'devices', '']), ['list', 'revoke']);
  assert.deepEqual(await complete(['knockgw', 'completion', 'z']), ['zsh']);
});

void test('knockgw completion bash|zsh prints the scripts; another shell is a usage error', async () => {
  const bash = await run(['completion', 'bash']);
  assert.equal(bash.code, 0);
  assert.match(bash.stdout, /complete -F _knockgw knockgw/);
  const zsh = await run(['completion', 'zsh']);
  assert.match(zsh.stdout, /^#compdef knockgw/);
  assert.equal((await run(['completion', 'fish'])).code, 64);
});

void test("the Node version check reads package.json's engines range", () => {
  assert.deepEqual(minimumNode('>=22.18'), [22, 18, 0]);
  assert.equal(nodeSatisfies('v20.19.2', '>=22.18'), false);
  assert.equal(nodeSatisfies('22.18.0', '>=22.18'), true);
  assert.equal(nodeSatisfies('24.1.0', '>=22.18'), true);
  assert.equal(nodeFinding('v20.19.2', '/usr/bin/node', '>=22.18').level, 'error');
  assert.match(nodeFinding('v20.19.2', '/usr/bin/node', '>=22.18').text, /v20\.19\.2.*below.*>=22\.18/);
  assert.equal(nodeFinding(process.version, process.execPath).level, 'ok', 'the pinned Node satisfies package.json');
});
