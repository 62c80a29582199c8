// The packet proof sources for a Config: the pcap engine (the kernel intake's NFLOG group on
// nftables, else a tcpdump capture per interface; with knockd's one_time_sequences), the kernel
// engine's NFLOG reader, and SPA (a UDP socket behind the SPA intake). Nothing is spawned until the
// gateway starts them.
import { networkInterfaces } from 'node:os';
import type { EnginePlan } from '../core/engines.ts';
import { NFLOG_GROUP } from '../core/nft-kernel.ts';
import { INTAKE_GROUPS } from '../core/nft-intake.ts';
import type { Config } from '../config/types.ts';
import type { Clock, GrantStore, HostFirewall, Logger, NonceStore, ProofSource } from '../ports.ts';
import { decodeSpa } from '../protocol/fwknop.ts';
import { createNflogSource, createSpaSocket, createTcpdumpSource } from '../adapters/capture/index.ts';
import type { Metrics } from '../services/metrics.ts';
import { createKernelSource } from '../services/source-kernel.ts';
import { createPcapSource } from '../services/source-pcap.ts';
import { createSpaSource } from '../services/source-spa.ts';
import type { OneTimeFiles } from './files.ts';
import { pcapReadsNflog } from './firewall.ts';

/** Every address of this host, on every interface: a knock "from" one of them is a spoof. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, '')));
}

export interface SourceDeps {
  readonly oneTime: OneTimeFiles | undefined;
  /** The kernel engine's firewall (its done and allowed sets) and the store it repairs against. */
  readonly firewall: HostFirewall;
  readonly store: GrantStore;
  /** The store backend's replay cache (SPA digests). */
  readonly nonces: NonceStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export function knockSources(config: Config, engines: EnginePlan, deps: SourceDeps): ProofSource[] {
  const { clock, logger, metrics, oneTime } = deps;
  const sources: ProofSource[] = [];
  if (engines.pcap.length > 0) {
    const nflog = pcapReadsNflog(config);
    if (!nflog) logger.info({ event: 'intake.interface', firewall: config.firewall, interfaces: config.interfaces }, `the pcap engine reads ${config.interfaces.join(',')} with tcpdump: the ${config.firewall} backend has no kernel intake for knocks (nftables has)`);
    sources.push(
      createPcapSource({
        openCaptures: () =>
          nflog
            ? [createNflogSource({ group: INTAKE_GROUPS.pcap, logger: logger.child({ component: 'nflog', intake: 'pcap' }) })]
            : config.interfaces.map((iface) =>
              createTcpdumpSource({ interface: iface, sequences: engines.pcap, ports: oneTime?.ports ?? [], logger: logger.child({ component: 'capture', interface: iface }) }),
            ),
        sequences: engines.pcap,
        machine: { maxTrackedSources: config.maxTrackedSources, rateLimit: config.knockRateLimit, ownAddresses: hostAddresses() },
        ...(oneTime ? { oneTime } : {}),
        clock,
        logger,
        metrics,
      }),
    );
  }
  if (engines.kernel.length > 0) {
    sources.push(
      createKernelSource({
        openReports: () => createNflogSource({ group: NFLOG_GROUP, logger: logger.child({ component: 'nflog' }) }),
        sequences: config.sequences,
        doors: config.doors,
        firewall: deps.firewall,
        store: deps.store,
        clock,
        metrics,
      }),
    );
  }
  const spa = config.spa;
  if (spa) {
    sources.push(
      createSpaSource({
        openPackets: () => createSpaSocket({ port: spa.port, logger: logger.child({ component: 'spa-socket' }) }),
        access: spa.access,
        maxPacketAgeMs: spa.maxPacketAgeMs,
        decode: decodeSpa,
        nonces: deps.nonces,
        clock,
        logger: logger.child({ component: 'spa' }),
        metrics,
      }),
    );
  }
  return sources;
}
