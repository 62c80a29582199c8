// Every shell script the project ships or writes parses under the shell it names (`sh -n` for
// #!/bin/sh, `bash -n` for bash) and passes shellcheck: the scripts in the repository, the
// deploy plans (plan.sh, written for POSIX sh) and the generated bash completion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { writePlan } from '../../scripts/deploy/common.ts';
import { bashCompletion, zshCompletion } from '../../gateway/cli/completion.ts';

const execFileP = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SKIP = new Set(['node_modules', 'dist', '.git']);

/** Files named *.sh or starting with a sh/bash/dash shebang, anywhere in the repository. */
async function shellScripts(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await shellScripts(p)));
    else if (entry.isFile() && (entry.name.endsWith('.sh') || /^#!\S*(?:\/|env )(?:sh|bash|dash)\b/.test((await readFile(p, 'utf8').catch(() => '')).slice(0, 64)))) out.push(p);
  }
  return out;
}

async function check(file: string): Promise<void> {
  const first = (await readFile(file, 'utf8')).split('\n')[0] ?? '';
  const shell = /\bbash\b/.test(first) ? 'bash' : 'sh';
  await execFileP(shell, ['-n', file]).catch((err: { stderr?: string }) => assert.fail(`${shell} -n ${relative(ROOT, file)}: ${err.stderr ?? ''}`));
  await execFileP('shellcheck', ['-x', '-s', shell, file], { cwd: ROOT }).catch((err: { stdout?: string }) => assert.fail(`shellcheck ${relative(ROOT, file)}:\n${err.stdout ?? ''}`));
}

void test("every shell script in the repository parses under its own shell and passes shellcheck", async () => {
  const scripts = await shellScripts(ROOT);
  assert.ok(scripts.some((f) => f.endsWith('scripts/setup.sh')) && scripts.some((f) => f.endsWith('.ci/run')), `found: ${scripts.map((f) => relative(ROOT, f)).join(', ')}`);
  for (const f of scripts) await check(f);
});

void test('a deploy plan is POSIX sh: a secret on stdin comes from its file, a file:// placeholder expands', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-plan-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writePlan(dir, {
    platform: 'gcp', dryRun: true, templates: [], outputs: {}, redisAcl: ['ACL SETUSER knockgw-relay on #abc ~knockgw:* +set'],
    steps: [
      { argv: ['gcloud', 'secrets', 'versions', 'add', 'knockgw-relay-keys', '--data-file', '-'], stdin: 'KEYS_FILE', why: 'from stdin' },
      { argv: ['aws', 'ssm', 'put-parameter', '--value', 'file://$RELAY_REDIS_URL', '--query', "Stacks[0].Parameters[?ParameterKey=='ConfigVersion']"] },
    ],
  });
  const plan = join(dir, 'plan.sh');
  const text = await readFile(plan, 'utf8');
  assert.match(text, /--data-file - < "\$KEYS_FILE"$/m);
  assert.match(text, /--value "file:\/\/\$RELAY_REDIS_URL"/);
  assert.match(text, /set KEYS_FILE and RELAY_REDIS_URL to the file/);
  assert.doesNotMatch(text, /<<</);
  await check(plan);
});

void test('the generated bash completion passes bash -n and shellcheck', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-completion-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'knockgw.bash');
  await writeFile(file, `#!/usr/bin/env bash\n${bashCompletion()}`);
  assert.ok((await stat(file)).size > 0);
  await check(file);
});

void test('the generated zsh completion passes zsh -n, loads under compinit and offers the commands', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kgw-completion-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, '_knockgw'), zshCompletion());
  await execFileP('zsh', ['-n', join(dir, '_knockgw')]).catch((err: { stderr?: string }) => assert.fail(`zsh -n: ${err.stderr ?? ''}`));
  // The function as compinit autoloads it from $fpath; _describe replaced by a recorder so the
  // commands it would offer can be read without a terminal.
  const script = [
    `fpath=(${dir} $fpath)`,
    `autoload -Uz compinit && compinit -u -d ${dir}/zcompdump`,
    '_describe() { print -l -- "${(@P)${@[-1]}}" }',
    'words=(knockgw ""); CURRENT=2',
    'autoload -Uz _knockgw && _knockgw',
  ].join('\n');
  const { stdout, stderr } = await execFileP('zsh', ['-f', '-c', script], { env: { ...process.env, HOME: dir } });
  assert.equal(stderr, '');
  const offered = stdout.trim().split('\n').map((l) => l.split(':')[0]);
  for (const cmd of ['daemon', 'knock', 'status', 'doctor', 'completion']) assert.ok(offered.includes(cmd), `${cmd} in ${offered.join(' ')}`);
});
