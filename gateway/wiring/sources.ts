// The knock engines' proof sources for a Config: the pcap engine (a tcpdump capture per
// interface, with knockd's one_time_sequences) and the kernel engine's NFLOG reader. Nothing is
// spawned until the gateway starts them.
import { networkInterfaces } from 'node:os';
import type { EnginePlan } from '../core/engines.ts';
import { NFLOG_GROUP } from '../core/nft-kernel.ts';
import type { Config } from '../config/types.ts';
import type { Clock, GrantStore, HostFirewall, Logger, ProofSource } from '../ports.ts';
import { createNflogSource, createTcpdumpSource } from '../adapters/packet-tcpdump.ts';
import type { Metrics } from '../services/metrics.ts';
import { createKernelSource } from '../services/source-kernel.ts';
import { createPcapSource } from '../services/source-pcap.ts';
import type { OneTimeFiles } from './files.ts';

/** Every address of this host, on every interface: a knock "from" one of them is a spoof. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, '')));
}

export function knockSources(config: Config, engines: EnginePlan, deps: { oneTime: OneTimeFiles | undefined; firewall: HostFirewall; store: GrantStore; clock: Clock; logger: Logger; metrics: Metrics }): ProofSource[] {
  const { clock, logger, metrics, oneTime } = deps;
  const sources: ProofSource[] = [];
  if (engines.pcap.length > 0) {
    sources.push(
      createPcapSource({
        openCaptures: () =>
          config.interfaces.map((iface) =>
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
  return sources;
}
