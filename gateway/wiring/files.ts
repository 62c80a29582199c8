// Every file a Config points to besides itself — knockd's one_time_sequences files, the relay
// keys — read and checked once. The daemon gets them through assembleGateway(); `doctor`,
// `install` and `base` read them too, so they fail the way the daemon would.
import { kgwError } from '../core/errors.ts';
import type { PortSpec } from '../core/grant.ts';
import type { OneTimeSequence } from '../core/knock-state.ts';
import type { KnockSequence } from '../core/types.ts';
import type { Config } from '../config/types.ts';
import type { Logger } from '../ports.ts';
import type { RelayKeys } from '../protocol/relay-v1.ts';
import { loadKeysFile } from '../kit/keys-file.ts';
import { loadOneTimeSequences, markOneTimeSequenceUsed, oneTimePorts } from '../adapters/store/index.ts';
import type { OneTimeBook } from '../services/source-pcap.ts';

export type OneTimeFiles = OneTimeBook & { readonly ports: readonly PortSpec[] };

export interface ConfigFiles {
  readonly oneTime: OneTimeFiles | undefined;
  readonly relayKeys: RelayKeys | undefined;
}

export async function readConfigFiles(config: Config, logger: Logger): Promise<ConfigFiles> {
  return {
    oneTime: await loadOneTimeBook(config.sequences, logger),
    relayKeys: config.relay ? await loadKeysFile(config.relay.keysFile) : undefined,
  };
}

/**
 * Reads every one_time_sequences file once. knockd refuses to start when one is unreadable or
 * used up, and so does knockgw (a config error: exit 78).
 */
async function loadOneTimeBook(sequences: readonly KnockSequence[], logger: Logger): Promise<OneTimeFiles | undefined> {
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

