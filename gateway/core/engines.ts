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
  /** sequence id → why it fell back to pcap (only those that did). */
  readonly fallback: Readonly<Record<string, string>>;
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
  const fallback: Record<string, string> = {};
  const wantKernel = input.engine !== 'pcap';
  for (const seq of input.sequences) {
    const reason = !wantKernel ? undefined : input.firewall !== 'nftables' ? `the ${input.firewall} backend has no kernel engine` : kernelUnsupportedReason(seq, input.doors);
    if (wantKernel && reason === undefined) {
      kernel.push(seq);
      describe[seq.id] = 'kernel';
    } else {
      pcap.push(seq);
      describe[seq.id] = reason === undefined ? 'pcap' : `pcap (${reason})`;
      if (reason !== undefined) fallback[seq.id] = reason;
    }
  }
  return { kernel, pcap, describe, fallback };
}

/** A door's engine as a code for `status --json`: spa and relay-only doors have no knock sequence. */
export interface DoorEngine { readonly name: string; readonly engine: 'kernel' | 'pcap' | 'spa' | 'none'; readonly reason?: string }

/** kernel when every sequence of the door runs there, pcap (with the first fallback reason) otherwise. */
export function doorEngines(plan: EnginePlan, doors: readonly string[], spaDoors: readonly string[]): DoorEngine[] {
  const out: DoorEngine[] = doors.map((name) => {
    const inKernel = plan.kernel.filter((s) => s.door === name).length;
    const inPcap = plan.pcap.filter((s) => s.door === name);
    if (inPcap.length > 0) {
      const why = inPcap.map((s) => plan.fallback[s.id]).find((r) => r !== undefined);
      return { name, engine: 'pcap', ...(why ? { reason: why } : {}) };
    }
    return { name, engine: inKernel > 0 ? 'kernel' : 'none' };
  });
  return [...out, ...spaDoors.map((name) => ({ name, engine: 'spa' as const }))];
}
