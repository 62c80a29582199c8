// The knock engines' proof sources for a Config: the pcap engine (a tcpdump capture per
// interface, knockd's one_time_sequences files) and the kernel engine's NFLOG reader. Nothing is
// spawned until the gateway starts them.
import { networkInterfaces } from 'node:os';
import { kgwError } from '../core/errors.ts';
import type { EnginePlan } from '../core/engines.ts';
import type { OneTimeSequence } from '../core/knock-state.ts';
import { NFLOG_GROUP } from '../core/nft-kernel.ts';
import type { KnockSequence } from '../core/types.ts';
import type { Config } from '../config/types.ts';
import type { Clock, Logger, ProofSource } from '../ports.ts';
import { createNflogSource, createTcpdumpSource } from '../adapters/packet-tcpdump.ts';
import { loadOneTimeSequences, markOneTimeSequenceUsed, oneTimePorts } from '../adapters/one-time-sequences.ts';
import type { Metrics } from '../services/metrics.ts';
import { createKernelSource } from '../services/source-kernel.ts';
import { createPcapSource, type OneTimeBook } from '../services/source-pcap.ts';

/**
 * Reads every one_time_sequences file once. knockd refuses to start when one is unreadable or
 * used up, and so does knockgw (a config error: exit 78).
 */
export async function loadOneTimeBook(sequences: readonly KnockSequence[], logger: Logger): Promise<OneTimeBook & { readonly ports: ReturnType<typeof oneTimePorts> } | undefined> {
  const entries = new Map<string, readonly OneTimeSequence[]>();
  const paths = new Map<string, string>();
  for (const seq of sequences) {
    if (seq.oneTimeSequencesFile === undefined) continue;
    const file = await loadOneTimeSequences(seq.oneTimeSequencesFile).catch((err: unknown) => {
      throw kgwError('KGW_CONFIG_READ', `${seq.origin}: [${seq.id}] one_time_sequences: ${err instanceof Error ? err.message.replace(/^KGW_\w+: /, '') : String(err)}`, { file: seq.oneTimeSequencesFile }, err);
    });
    for (const bad of file.invalid) logger.warn({ event: 'config.one_time_invalid', file: file.path, line: bad.line + 1, reason: bad.reason }, `${file.path}:${bad.line + 1} skipped: ${bad.reason}`);
    if (file.entries.length === 0) {
      throw kgwError('KGW_CONFIG_KNOCKD', `${seq.origin}: [${seq.id}] one_time_sequences file ${file.path} has no unused sequence left; add lines such as " 7000,8000:udp,9000"`, { file: file.path });
    }
    entries.set(seq.id, file.entries);
    paths.set(seq.id, file.path);
  }
  if (entries.size === 0) return undefined;
  return {
    entries,
    ports: oneTimePorts([...entries.values()].flat()),
    markUsed: (sequenceId, used) => markOneTimeSequenceUsed(paths.get(sequenceId) ?? '', used),
  };
}

/** Every address of this host, on every interface: a knock "from" one of them is a spoof. */
function hostAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, '')));
}

export async function knockSources(config: Config, engines: EnginePlan, deps: { clock: Clock; logger: Logger; metrics: Metrics }): Promise<ProofSource[]> {
  const { clock, logger, metrics } = deps;
  const sources: ProofSource[] = [];
  if (engines.pcap.length > 0) {
    const oneTime = await loadOneTimeBook(engines.pcap, logger);
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
      }),
    );
  }
  return sources;
}
