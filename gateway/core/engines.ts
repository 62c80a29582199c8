// Which knock engine runs each sequence: the kernel where it can (nftables only), pcap for the
// rest, and why. Pure; the daemon, `doctor`, `base` and `install` all ask this one function.
import { kgwError } from './errors.ts';
import { kernelUnsupportedReason } from './nft-kernel.ts';
import type { Door, KnockSequence } from './types.ts';

export type Engine = 'auto' | 'kernel' | 'pcap';
export type FirewallKind = 'nftables' | 'iptables' | 'none';

export interface EnginePlan {
  readonly kernel: readonly KnockSequence[];
  readonly pcap: readonly KnockSequence[];
  /** sequence id → engine and, for pcap under kernel/auto, why. */
  readonly describe: Readonly<Record<string, string>>;
}

export interface EngineInput {
  readonly engine: Engine;
  readonly firewall: FirewallKind;
  readonly sequences: readonly KnockSequence[];
  readonly doors: readonly Door[];
}

export function planEngines(input: EngineInput): EnginePlan {
  if (input.engine === 'kernel' && input.firewall !== 'nftables') {
    throw kgwError('KGW_CONFIG_INVALID', `--engine kernel needs --firewall nftables (got ${input.firewall})`, { engine: input.engine, firewall: input.firewall });
  }
  const kernel: KnockSequence[] = [];
  const pcap: KnockSequence[] = [];
  const describe: Record<string, string> = {};
  const wantKernel = input.engine !== 'pcap';
  for (const seq of input.sequences) {
    const reason = !wantKernel ? undefined : input.firewall !== 'nftables' ? `the ${input.firewall} backend has no kernel engine` : kernelUnsupportedReason(seq, input.doors);
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
