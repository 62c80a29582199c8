// `npm run bench`: knockgw side by side with the real knockd and fwknopd, in throwaway network namespaces,
// printing a table, the verdict on each target, and one `bench key=value` line per metric.
//   sudo npm run bench [-- --quick] [--only knock,spa,scale,ha,cloud,relay] [--runs N]
//        [--flood-seconds S] [--flood-interval auto|uNN] [--markdown FILE]
//        [--trace]   (the daemon's per-stage breakdown, from its /metrics: services/trace.ts)
//   npm run bench -- --fleet [--fleet-nodes 5,10,25,50] [--quick]   (no root needed; fleet/index.ts)
// Everything it starts (namespaces, knockd, fwknopd, hping3, daemons, redis, fakes) is removed on exit,
// on failure and on Ctrl-C; the whole run is bounded in time.
import { cpus, loadavg, release } from 'node:os';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { canUseNetns } from '../test/helpers/netns.ts';
import { describeError } from '../gateway/core/errors.ts';
import { benchKnock } from './knock.ts';
import { benchSpa } from './spa.ts';
import { benchScale } from './scale.ts';
import { benchHa } from './ha.ts';
import { benchCloud } from './cloud.ts';
import { benchRelay } from './relay.ts';
import { benchFleet } from './fleet/index.ts';
import { cleanupAll, installSignalCleanup } from './lib.ts';
import { CLOUD_LEASE_TTL_MS } from '../gateway/wiring/cloud-runtime.ts';
import { metricLines, renderTables, verdicts, type BenchResults } from './report.ts';
import type { SystemName } from './systems.ts';

const PHASES = ['knock', 'spa', 'scale', 'ha', 'cloud', 'relay', 'fleet'] as const;
/** The fleet simulation runs only when asked for (--fleet): minutes of 2 cores for one question. */
const DEFAULT_PHASES = PHASES.filter((p) => p !== 'fleet');
type Phase = (typeof PHASES)[number];

const USAGE = 'usage: npm run bench [-- --quick] [--only knock,spa,scale,ha,cloud,relay,fleet] [--fleet [--fleet-nodes 5,10,25,50]] [--runs N] [--flood-seconds S] [--flood-interval auto|uN] [--markdown FILE] [--trace]';

/** A bad argument is a usage error (exit 64) with the usage line, never a stack trace. */
function usage(message: string): never {
  process.stderr.write(`knockgw bench: ${message}\n${USAGE}\n`);
  process.exit(64);
}

function parseBenchArgs() {
  try {
    return parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        runs: { type: 'string' },
        'flood-seconds': { type: 'string' },
        'flood-interval': { type: 'string', default: 'auto' },
        markdown: { type: 'string' },
        fleet: { type: 'boolean', default: false },
        trace: { type: 'boolean', default: false },
        'fleet-nodes': { type: 'string' },
      },
    }).values;
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
}

function count(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : usage(`--${name} takes a whole number 1..${max} (got "${text}")`);
}

const values = parseBenchArgs();
const quick = values.quick;
const only = (values.only ?? (values.fleet ? 'fleet' : DEFAULT_PHASES.join(','))).split(',').map((p) => p.trim());
for (const p of only) if (!(PHASES as readonly string[]).includes(p)) usage(`unknown bench phase "${p}" (phases: ${PHASES.join(', ')})`);
const settings = {
  runs: count('runs', values.runs, quick ? 10 : 50, 10_000),
  floodSeconds: count('flood-seconds', values['flood-seconds'], quick ? 4 : 10, 120),
  floodInterval: values['flood-interval'],
  floodTargetPps: 18_000,
  grantSizes: quick ? [10_000] : [10_000, 100_000],
  haSamples: quick ? 50 : 200,
  cloudGrants: 100,
  relaySeconds: quick ? 2 : 5,
  fleet: {
    ladder: (values['fleet-nodes'] ?? (quick ? '5,50' : '5,10,25,50')).split(',').map((n) => count('fleet-nodes', n, 5, 500)),
    processes: 5,
    grants: quick ? 50 : 100,
    perSecond: 20,
    fastPerSecond: 250,
    live: quick ? 2000 : 10_000,
    idleSeconds: quick ? 5 : 10,
    leaseTtlMs: CLOUD_LEASE_TTL_MS,
  },
  /** Hard bound on the whole run: past it, everything is torn down and the bench fails. */
  budgetMs: (quick ? 4 : 12) * 60_000 + (values.fleet ? 6 * 60_000 : 0),
};
const SYSTEMS: readonly SystemName[] = ['knockd', 'kernel', 'pcap'];

const log = (line: string): void => void process.stderr.write(`${line}\n`);

function machine(): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const version = (pkg: string): string => spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' }).stdout || 'unknown';
  return `${cpus().length} cores (${model}), Linux ${release()}, Node ${process.versions.node}, knockd ${version('knockd')}, fwknopd ${version('fwknop-server')}, load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

/** Set when the budget ran out: no new phase starts, the one in flight fails once its namespaces are gone. */
let aborted = false;

async function runPhases(results: BenchResults): Promise<void> {
  const phase = async (name: Phase, body: () => Promise<void>): Promise<void> => {
    if (!only.includes(name) || aborted) return;
    const t0 = Date.now();
    try {
      await body();
    } catch (err) {
      results.errors.push({ phase: name, message: describeError(err) });
      log(`phase ${name} failed: ${describeError(err)}`);
    } finally {
      await cleanupAll();
      log(`phase ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  };
  await phase('knock', async () => {
    results.knock = await benchKnock({ runs: settings.runs, floodSeconds: settings.floodSeconds, floodInterval: settings.floodInterval, floodTargetPps: settings.floodTargetPps, systems: SYSTEMS, trace: values.trace, progress: log });
  });
  await phase('spa', async () => {
    results.spa = await benchSpa({ runs: settings.runs, floodSeconds: settings.floodSeconds, floodInterval: settings.floodInterval, floodTargetPps: settings.floodTargetPps, trace: values.trace, progress: log });
  });
  await phase('scale', async () => {
    log(`nftables apply(): ${settings.grantSizes.join(', ')} grants…`);
    results.scale = await benchScale(settings.grantSizes);
  });
  await phase('ha', async () => {
    log(`HA propagation through redis: ${settings.haSamples} grants…`);
    results.ha = await benchHa(settings.haSamples);
  });
  await phase('cloud', async () => {
    log(`cloud calls per grant: ${settings.cloudGrants} grants, AWS prefix-list, AWS rules, GCP aggregated, GCP per-grant…`);
    results.cloud = await benchCloud(settings.cloudGrants);
  });
  await phase('fleet', async () => {
    log(`fleet: ${settings.fleet.ladder.join(' → ')} gateway nodes on one redis-server, ${settings.fleet.live} live grants at the largest…`);
    results.fleet = { sizes: [] };
    await benchFleet(settings.fleet, log, results.fleet);
  });
  await phase('relay', async () => {
    results.relay = [];
    for (const alg of ['hmac-sha256', 'ed25519'] as const) {
      log(`relay: ${settings.relaySeconds} s of ${alg} knocks…`);
      results.relay.push(await benchRelay({ seconds: settings.relaySeconds, alg }));
    }
  });
}

async function main(): Promise<number> {
  if (only.some((p) => p === 'knock' || p === 'spa' || p === 'scale') && !(await canUseNetns())) {
    log('npm run bench needs root and network namespaces (sudo npm run bench), or --only ha,cloud,relay');
    return 2;
  }
  installSignalCleanup();
  const started = new Date();
  const about = machine();
  log(`knockgw bench${quick ? ' (quick)' : ''}: ${about}`);
  const results: BenchResults = { errors: [] };
  let timer: NodeJS.Timeout | undefined;
  const overBudget = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      results.errors.push({ phase: 'all', message: `the bench ran past its ${settings.budgetMs / 60_000} min budget and was stopped` });
      resolve();
    }, settings.budgetMs);
  });
  const phases = runPhases(results);
  await Promise.race([phases, overBudget]);
  clearTimeout(timer);
  if (results.errors.some((e) => e.phase === 'all')) {
    aborted = true;
    await cleanupAll();
    // The phase in flight now fails fast (its namespaces are gone); wait for it so nothing it
    // creates on the way out outlives the bench.
    await Promise.race([phases, new Promise((r) => setTimeout(r, 30_000))]);
  }
  await cleanupAll();

  const body = [renderTables(results), '', 'targets:', ...verdicts(results).map((v) => `  ${v}`), '', ...metricLines(results)].join('\n');
  process.stdout.write(`${body}\n`);
  if (values.markdown) {
    const md = [
      `## Benchmark results (${started.toISOString().slice(0, 10)})`,
      '',
      `\`npm run bench${quick ? ' -- --quick' : ''}\` as root, ${started.toISOString()}. Machine: ${about}.`,
      '',
      'Absolute times on this small shared VM are noisy (other work ran on the same 2 cores); the ratios between systems measured in the same run, on the same namespaces, are what matters.',
      '',
      '```',
      body,
      '```',
      '',
    ].join('\n');
    await writeFile(values.markdown, md);
    log(`wrote ${values.markdown}`);
  }
  return results.errors.length > 0 ? 1 : 0;
}

process.exitCode = await main().catch(async (err: unknown) => {
  log(`bench failed: ${describeError(err)}`);
  await cleanupAll();
  return 1;
});
// Pending handles (SDK agents, timers of the fakes) must not keep a finished bench alive.
setTimeout(() => process.exit(), 500).unref();
