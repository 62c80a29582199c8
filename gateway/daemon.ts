// The composition root of `knockgw daemon`: load the config, wire the adapters, start the
// services, and own the signals and the orderly shutdown.
import { hostname } from 'node:os';
import { loadConfig } from './config/load.ts';
import { createLogger } from './log.ts';
import { describeError, kgwError } from './core/errors.ts';
import { formatPort } from './core/grant.ts';
import { kernelUnsupportedReason, parseNflogPrefix } from './core/nft-kernel.ts';
import { systemClock, type HostFirewall, type Logger, type PacketSource } from './ports.ts';
import type { Config } from './config/types.ts';
import type { KnockSequence } from './core/types.ts';
import type { Command } from './cli.ts';
import { createMetrics, type Metrics } from './services/metrics.ts';
import { createGrantService, type GrantService } from './services/grants.ts';
import { createReconciler } from './services/reconciler.ts';
import { startKnockListener, type CompletedKnock } from './services/knock-listener.ts';
import { startControlServer } from './services/control-server.ts';
import { createHostFirewall } from './adapters/firewall.ts';
import { detectConflicts } from './adapters/firewall-conflicts.ts';
import { createTcpdumpSource, createNflogSource } from './adapters/packet-tcpdump.ts';
import { runCommand } from './adapters/command-exec.ts';
import { loadOneTimeSequences, markOneTimeSequenceUsed, oneTimePorts, type OneTimeSequencesFile } from './adapters/one-time-sequences.ts';
import { createStore } from './adapters/store.ts';
import type { CloudRuntime } from './services/cloud-runtime.ts';
import type { RelayRuntime } from './services/relay-runtime.ts';

/** NFLOG group the kernel engine reports completed sequences on. */
export const NFLOG_GROUP = 7213;

export interface EnginePlan {
  readonly kernel: readonly KnockSequence[];
  readonly pcap: readonly KnockSequence[];
  /** sequence id → engine and, for pcap under kernel/auto, why. */
  readonly describe: Readonly<Record<string, string>>;
}

/** Which engine runs each sequence: the kernel where it can (nftables only), pcap for the rest. */
export function planEngines(config: Config): EnginePlan {
  const kernel: KnockSequence[] = [];
  const pcap: KnockSequence[] = [];
  const describe: Record<string, string> = {};
  const wantKernel = config.engine !== 'pcap';
  if (config.engine === 'kernel' && config.firewall !== 'nftables') {
    throw kgwError('KGW_CONFIG_INVALID', `--engine kernel needs --firewall nftables (got ${config.firewall})`, { engine: config.engine, firewall: config.firewall });
  }
  for (const seq of config.sequences) {
    const reason = !wantKernel ? undefined : config.firewall !== 'nftables' ? `the ${config.firewall} backend has no kernel engine` : kernelUnsupportedReason(seq, config.doors);
    if (wantKernel && reason === undefined) {
      kernel.push(seq);
      describe[seq.id] = 'kernel';
    } else {
      pcap.push(seq);
      describe[seq.id] = reason === undefined ? 'pcap' : `pcap (${reason})`;
    }
  }
  return { kernel, pcap, describe };
}

/** The host firewall for this config, with the kernel engine compiled in where it runs. */
export function hostFirewallFor(config: Config, engines: EnginePlan, logger: Logger): HostFirewall {
  return createHostFirewall(config.firewall, {
    logger,
    ...(engines.kernel.length > 0
      ? // The whole list: NFLOG prefixes carry an index into it; the compiler skips what it cannot run.
        { kernel: { sequences: config.sequences, doors: config.doors, nflogGroup: NFLOG_GROUP, rateLimit: config.knockRateLimit } }
      : {}),
  });
}

async function onCompleted(e: CompletedKnock, grants: GrantService, logger: Logger): Promise<void> {
  switch (e.action.kind) {
    case 'open':
      await grants.open({ door: e.door, ip: e.ip, source: 'knock' });
      return;
    case 'close':
      await grants.close({ door: e.door, ip: e.ip, reason: 'sequence' });
      return;
    case 'command': {
      const { start, stop, stopAfterMs } = e.action;
      const result = await runCommand(start, e.ip, e.family, { timeoutMs: 30_000, logger });
      logger.info({ event: 'command.run', sequence: e.sequenceId, ip: e.ip, code: result.code }, `ran ${e.sequenceId} command for ${e.ip}`);
      if (stop && stopAfterMs !== undefined) {
        setTimeout(() => {
          runCommand(stop, e.ip, e.family, { timeoutMs: 30_000, logger }).then(
            (r) => logger.info({ event: 'command.run', sequence: e.sequenceId, ip: e.ip, code: r.code, stop: true }, `ran ${e.sequenceId} stop command for ${e.ip}`),
            (err: unknown) => logger.error({ event: 'command.error', sequence: e.sequenceId, ip: e.ip, err: describeError(err) }, 'stop command failed'),
          );
        }, stopAfterMs).unref();
      }
      return;
    }
  }
}

/** knockd one_time_sequences files of the pcap-engine sequences, by sequence id. */
async function loadOneTimeFiles(sequences: readonly KnockSequence[], logger: Logger): Promise<Map<string, OneTimeSequencesFile>> {
  const out = new Map<string, OneTimeSequencesFile>();
  for (const seq of sequences) {
    if (!seq.oneTimeSequencesFile) continue;
    const file = await loadOneTimeSequences(seq.oneTimeSequencesFile);
    for (const bad of file.invalid) logger.warn({ event: 'config.one_time_invalid', file: file.path, line: bad.line + 1, reason: bad.reason }, `${file.path}:${bad.line + 1} skipped: ${bad.reason}`);
    out.set(seq.id, file);
  }
  return out;
}

export async function runDaemon(command: Extract<Command, { cmd: 'daemon' }>): Promise<number> {
  const config = await loadConfig({ ...command.source, overrides: command.overrides, hostname: hostname() });
  const logger = createLogger({ level: config.log.level, format: config.log.format, ...(config.log.file ? { file: config.log.file } : {}) });
  const clock = systemClock;
  const metrics: Metrics = createMetrics();
  const engines = planEngines(config);
  const started: { close(): Promise<void> }[] = [];
  const sources: PacketSource[] = [];

  const shutdown = async (signal: string): Promise<void> => {
    logger.info({ event: 'daemon.stopping', signal, teardown: command.teardown }, `stopping on ${signal}`);
    const deadline = setTimeout(() => {
      logger.error({ event: 'daemon.stop_timeout' }, 'shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    for (const s of sources) await s.close().catch(() => undefined);
    await reconciler.stop();
    for (const s of started.reverse()) await s.close().catch((err: unknown) => logger.warn({ event: 'daemon.close_error', err: describeError(err) }, 'closing a component failed'));
    firewall.close?.();
    if (command.teardown) {
      await firewall.teardown();
      logger.info({ event: 'firewall.teardown', firewall: firewall.name }, 'removed every rule knockgw created');
    }
    clearTimeout(deadline);
    logger.info({ event: 'daemon.stopped' }, 'stopped');
  };

  /** The kernel completed (or closed) a sequence: record it like any other knock. */
  async function onKernelEvent(prefix: string | undefined, ip: string): Promise<void> {
    const parsed = parseNflogPrefix(prefix ?? '');
    const seq = parsed ? config.sequences[parsed.index] : undefined;
    if (!parsed || !seq) return;
    logger.info({ event: 'knock.completed', sequence: seq.id, door: seq.door, ip, engine: 'kernel' }, `${ip}: ${seq.id} completed (kernel)`);
    const done = parsed.action === 'open' ? grants.open({ door: seq.door, ip, source: 'knock' }) : grants.close({ door: seq.door, ip, reason: 'sequence' });
    await done.catch((err: unknown) => logger.error({ event: 'knock.error', sequence: seq.id, ip, err: describeError(err) }, 'recording a kernel knock failed'));
  }

  const firewall = hostFirewallFor(config, engines, logger.child({ component: 'firewall' }));
  const store = await createStore(config.store, { stateFile: config.stateFile, nodeId: config.nodeId, clock, logger: logger.child({ component: 'store' }) });
  started.push(store);
  const grants = createGrantService({ store, doors: config.doors, clock, logger, nodeId: config.nodeId, metrics });

  // Base rules first: port 22 is closed before anything else can go wrong.
  await firewall.ensureBase(config.protectedPorts);
  if (config.firewall !== 'none') {
    const conflicts = await detectConflicts(config.protectedPorts).catch((err: unknown) => {
      logger.warn({ event: 'firewall.conflict_check_failed', err: describeError(err) }, 'could not inspect other firewall rules');
      return [];
    });
    for (const c of conflicts) logger.warn({ event: 'firewall.conflict', source: c.source, where: c.where, rule: c.rule }, c.explanation);
  }

  // The cloud SDKs take seconds to load: only when a cloud is configured.
  const cloud: CloudRuntime | undefined = config.cloud.aws || config.cloud.gcp ? (await import('./services/cloud-runtime.ts')).startCloud({ config, store, clock, logger: logger.child({ component: 'cloud' }), metrics }) : undefined;
  if (cloud) started.push(cloud);
  const reconciler = createReconciler({ store, firewall, ...(cloud ? { cloud } : {}), clock, logger: logger.child({ component: 'reconciler' }), metrics, periodicMs: 30_000 });
  // TC4: every unexpired grant is back before the daemon says it is ready.
  await reconciler.reconcileNow();
  reconciler.start();

  const ifaces = config.interfaces;
  if (engines.pcap.length > 0) {
    const oneTime = await loadOneTimeFiles(engines.pcap, logger);
    const oneTimePortList = [...oneTime.values()].flatMap((f) => oneTimePorts(f.entries));
    // One capture and one machine per interface: a knock arrives whole on one interface.
    for (const iface of ifaces) {
      const packets = createTcpdumpSource({ interface: iface, sequences: engines.pcap, ports: oneTimePortList, logger: logger.child({ component: 'capture', interface: iface }) });
      sources.push(packets);
      await packets.ready();
      startKnockListener({
        packets,
        sequences: engines.pcap,
        machine: {
          maxTrackedSources: config.maxTrackedSources,
          rateLimit: config.knockRateLimit,
          oneTimeSequences: new Map([...oneTime].map(([id, f]) => [id, f.entries])),
        },
        clock,
        logger,
        metrics,
        onCompleted: async (e) => {
          await onCompleted(e, grants, logger);
          const file = oneTime.get(e.sequenceId);
          const used = e.oneTime && file?.entries.find((x) => x.line === e.oneTime?.line);
          if (file && used) {
            await markOneTimeSequenceUsed(file.path, used);
            logger.info({ event: 'knock.one_time_used', sequence: e.sequenceId, line: used.line + 1, remaining: e.oneTime?.remaining }, `one-time sequence on line ${used.line + 1} of ${file.path} used`);
          }
        },
      }).done.catch((err: unknown) => fatal(err));
    }
  }
  if (engines.kernel.length > 0) {
    const events = createNflogSource({ group: NFLOG_GROUP, logger: logger.child({ component: 'nflog' }) });
    sources.push(events);
    await events.ready();
    void (async () => {
      for await (const rec of events) await onKernelEvent(rec.nflogPrefix, rec.src);
    })().catch((err: unknown) => fatal(err));
  }

  const relay: RelayRuntime | undefined = config.relay ? await (await import('./services/relay-runtime.ts')).startRelayRuntime({ config, store, grants, clock, logger: logger.child({ component: 'relay' }) }) : undefined;
  if (relay) started.push(relay);

  started.push(
    await startControlServer(
      config.control,
      {
        status: async () => ({
          nodeId: config.nodeId,
          firewall: config.firewall,
          store: config.store === 'memory' ? 'memory' : 'redis',
          engines: engines.describe,
          grants: (await store.list()).map((g) => ({ ...g, ports: g.ports.map(formatPort), expiresAt: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString() })),
        }),
        revoke: async (ip) => {
          const closed = await grants.revokeIp(ip, 'revoke');
          await reconciler.reconcileNow();
          return { closed: closed.map((g) => ({ ...g, ports: g.ports.map(formatPort) })) };
        },
        metrics: () => metrics.render(),
      },
      logger,
    ),
  );

  let stopping: Promise<void> | undefined;
  function fatal(err: unknown): void {
    logger.fatal({ event: 'daemon.fatal', err: describeError(err) }, describeError(err));
    stopping ??= shutdown('fatal').finally(() => process.exit(1));
  }
  const exit = new Promise<number>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        stopping ??= shutdown(signal);
        void stopping.then(() => resolve(0));
      });
    }
  });

  logger.info(
    {
      event: 'daemon.ready',
      nodeId: config.nodeId,
      config: config.source.path,
      interfaces: ifaces,
      firewall: config.firewall,
      store: config.store === 'memory' ? 'memory' : 'redis',
      protectedPorts: config.protectedPorts.map(formatPort),
      engines: engines.describe,
    },
    `knockgw ready: ${config.protectedPorts.map(formatPort).join(',')} protected on ${ifaces.join(',')}`,
  );
  return exit;
}
