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
import { describeError, isKnockgwError } from '../gateway/core/errors.ts';
import { parseBenchArgs, USAGE, type BenchArgs, type Phase } from './args.ts';
import type { BenchResults } from './report.ts';
import type { SystemName } from './systems.ts';

/** A bad argument is a usage error (exit 64) with the usage line, never a stack trace. */
function parseOrExit(): BenchArgs {
  try {
    return parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    if (!isKnockgwError(err)) throw err;
    process.stderr.write(`knockgw bench: ${err.message.replace(/^KGW_CLI_USAGE: /, '')}\n${USAGE}\n`);
    process.exit(64);
  }
}

const values = parseOrExit();
// Only now the phases: a usage error must not wait for the SDKs and the lab to load.
const [{ canUseNetns }, { benchKnock }, { benchSpa }, { benchScale }, { benchHa }, { benchCloud }, { benchRelay }, { benchFleet }, { cleanupAll, installSignalCleanup }, { CLOUD_LEASE_TTL_MS }, { metricLines, renderTables, verdicts }] = await Promise.all([
  import('../test/helpers/netns.ts'), import('./knock.ts'), import('./spa.ts'), import('./scale.ts'), import('./ha.ts'), import('./cloud.ts'),
  import('./relay.ts'), import('./fleet/index.ts'), import('./lib.ts'), import('../gateway/wiring/cloud-runtime.ts'), import('./report.ts'),
]);
const { quick, only } = values;
const settings = {
  runs: values.runs,
  floodSeconds: values.floodSeconds,
  floodInterval: values.floodInterval,
  floodTargetPps: 18_000,
  grantSizes: quick ? [10_000] : [10_000, 100_000],
  haSamples: quick ? 50 : 200,
  cloudGrants: 100,
  relaySeconds: quick ? 2 : 5,
  fleet: {
    ladder: values.fleetLadder,
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
