// What both deploy scripts share: reading the two secrets from files (never from the command
// line), refusing a Redis credential that is not the relay's own, and writing the plan.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { describeError, exitStatusFor, kgwError } from '../../gateway/core/errors.ts';
import { loadKeysFile } from '../../gateway/kit/keys-file.ts';
import { relayAcl, RELAY_REDIS_USER, type RelayAcl } from '../../gateway/kit/redis/relay-acl.ts';
import { redactUrl, redisConnection } from '../../gateway/kit/redis/url.ts';
import { shellLine, type Runner, type Secret } from './runner.ts';

export interface RelaySecrets {
  readonly keys: Secret;
  readonly redisUrl: Secret;
  /** Clients in the keys file (checked before anything is deployed). */
  readonly clients: number;
  /** The rule the Redis must hold for the relay's user, and the commands that apply it. */
  readonly acl: RelayAcl;
  readonly aclCommands: readonly string[];
  /** The URL without its password, for the plan. */
  readonly redisTarget: string;
}

async function readSecretFile(path: string, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw kgwError('KGW_DEPLOY_USAGE', `cannot read ${what} from ${path}: ${describeError(err)}`, { path });
  }
}

/**
 * Reads the keys file and the relay's Redis URL. The URL must name its own ACL user: with the
 * gateways' credential (no user, or "default") a compromised relay could write grants, so that is
 * refused unless the operator accepts it in so many words (Memorystore for Redis has no ACL users).
 */
export async function readRelaySecrets(opts: { keysFile: string; redisUrlFile: string; allowSharedCredential: boolean; enroll?: boolean }): Promise<RelaySecrets> {
  const keys = await loadKeysFile(opts.keysFile);
  const keysText = await readSecretFile(opts.keysFile, 'the keys file');
  const url = await readSecretFile(opts.redisUrlFile, "the relay's Redis URL");
  const conn = redisConnection(url);
  if ('path' in conn && conn.path) throw kgwError('KGW_DEPLOY_USAGE', 'the relay runs elsewhere: its Redis URL must be redis:// or rediss://, not a unix socket', {});
  const user = conn.username ?? 'default';
  const db = conn.db ?? 0;
  if ((user === 'default' || !conn.password) && !opts.allowSharedCredential) {
    throw kgwError('KGW_DEPLOY_CREDENTIAL', `the relay's Redis URL ${redactUrl(url)} uses ${conn.password ? 'the default user' : 'no password'}; give the relay its own ACL user (${RELAY_REDIS_USER}, see infra/README.md) or pass --allow-shared-redis-credential and accept that a compromised relay can mint grants`, { user });
  }
  // --enroll: phones enroll through this relay (GETDEL on tokens, HGET/HSET on devices; relay-acl.ts says what that allows).
  const acl = relayAcl({ user: user === 'default' ? RELAY_REDIS_USER : user, db, enroll: opts.enroll ?? false });
  const hash = createHash('sha256').update(conn.password ?? '').digest('hex');
  return {
    keys: { label: 'KEYS_FILE', value: keysText },
    redisUrl: { label: 'RELAY_REDIS_URL', value: url },
    clients: keys.size,
    acl,
    aclCommands: [`ACL SETUSER ${acl.setUserArgs(hash).join(' ')}`, `# or in an aclfile: ${acl.aclFileLine(hash)}`, `# ElastiCache/MemoryDB access string: ${acl.accessString}`],
    redisTarget: redactUrl(url),
  };
}

export interface PlanFile {
  readonly platform: 'aws' | 'gcp';
  readonly dryRun: boolean;
  readonly steps: Runner['steps'];
  readonly templates: readonly string[];
  readonly redisAcl: readonly string[];
  readonly outputs: Readonly<Record<string, string>>;
}

/** plan.json and plan.sh in `dir`: what ran (or would run) and the ACL rule the Redis needs. */
export async function writePlan(dir: string, plan: PlanFile): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  const lines = ['#!/bin/sh', `# knockgw relay deploy (${plan.platform})${plan.dryRun ? ', dry run: nothing below was executed' : ''}`, `# Before running it, set ${[...new Set(plan.steps.flatMap((st) => [st.stdin, ...st.argv.map((w) => /\$([A-Z][A-Z0-9_]*)$/.exec(w)?.[1])]).filter((l): l is string => l !== undefined))].join(' and ') || 'nothing'} to the file holding each secret (--keys, --redis-url-file).`, '# Apply on the gateways\' Redis (as an admin user), once:', ...plan.redisAcl.map((l) => (l.startsWith('#') ? l : `#   ${l}`)), 'set -e', ...plan.steps.map((s) => `${s.why ? `# ${s.why}\n` : ''}${shellLine(s)}`)];
  await writeFile(join(dir, 'plan.sh'), `${lines.join('\n')}\n`);
}

/** `--name value` options with node:util parseArgs semantics, errors as KGW_DEPLOY_USAGE. */
export function need(values: Record<string, string | boolean | undefined>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw kgwError('KGW_DEPLOY_USAGE', `--${name} is required`, { option: name });
  return v;
}

/** node:util parseArgs with its errors as KGW_DEPLOY_USAGE (exit 64), naming the bad option. */
export function parseDeployArgs<const O extends NonNullable<ParseArgsConfig['options']>>(argv: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...argv], options, strict: true }).values;
  } catch (err) {
    throw kgwError('KGW_DEPLOY_USAGE', describeError(err).replace(/\. To specify a positional argument.*$/s, ''), {});
  }
}

/**
 * The entry point of a deploy script: `--help` prints its usage (exit 0); otherwise parse,
 * deploy, say where the plan is. A usage error is one line, the usage line and where to look (exit 64).
 */
export async function runDeployCli<O extends { dryRun: boolean; outDir: string }>(name: string, usage: string, parse: (argv: readonly string[]) => O, deploy: (o: O, log: (line: string) => void) => Promise<{ url: string }>): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`usage: npm run ${name} -- ${usage}\n`);
    return;
  }
  try {
    const o = parse(argv);
    const { url } = await deploy(o, (l) => process.stdout.write(`${l}\n`));
    process.stdout.write(`${o.dryRun ? 'dry run complete, plan' : 'deployed, log'} in ${o.outDir}/plan.sh; relay URL: ${url}\n`);
  } catch (err) {
    const status = exitStatusFor(err);
    process.stderr.write(`knockgw ${name}: ${describeError(err)}\n${status === 64 ? `usage: npm run ${name} -- ${usage.split('\n')[0] ?? ''}\ntry npm run ${name} -- --help\n` : ''}`);
    process.exitCode = status;
  }
}
