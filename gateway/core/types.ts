// The core's own types: what a knock sequence and a door are, what a packet looks like to the
// knock machine, and what a host firewall entry and operation are. config/ compiles user input
// into these, ports.ts and the adapters speak them; nothing here imports from outside core/.
import type { Family } from './ip.ts';
import type { PortSpec, Proto } from './grant.ts';
import type { DoorScope } from './scope.ts';

/** TCP flag bits as on the wire. */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

export interface KnockPacket {
  /** Unix milliseconds (capture time). */
  readonly ts: number;
  readonly src: string;
  readonly dst: string;
  readonly family: Family;
  readonly proto: Proto;
  readonly sport: number;
  readonly dport: number;
  /** TCP flag bits (0 for UDP). */
  readonly flags: number;
}

/** knockd `tcpflags`: every bit in `require` set, every bit in `forbid` clear. Both 0 = any packet. */
export interface TcpFlagMatch { readonly require: number; readonly forbid: number }

/** What a completed sequence does. */
export type SequenceAction =
  /** Open the door's ports for the knocking IP (a knockd iptables/ip6tables command understood as intent, or YAML). */
  | { readonly kind: 'open' }
  /** Close the door's grant for the knocking IP. */
  | { readonly kind: 'close' }
  /** Run knockd-style commands as argv (no shell), with %IP% validated and substituted. */
  | { readonly kind: 'command'; readonly start: CommandSpec; readonly stop?: CommandSpec; readonly stopAfterMs?: number };

/** A command as written; `argv` is the shell-word split of the text, `%IP%` still in place. */
export interface CommandSpec { readonly text: string; readonly argv: readonly string[]; readonly argv6?: readonly string[] }

export interface KnockSequence {
  /** Unique; for knockd.conf the section name. */
  readonly id: string;
  /** The door whose grant this sequence opens or closes. */
  readonly door: string;
  readonly ports: readonly PortSpec[];
  /** From the first knock. */
  readonly timeoutMs: number;
  readonly tcpFlags: TcpFlagMatch;
  readonly action: SequenceAction;
  /** knockd one_time_sequences: a file of sequences, each used once (`ports` is then empty: the file supplies them). */
  readonly oneTimeSequencesFile?: string;
  /** knockd `target`: match knocks sent to this address instead of the interface's own addresses. */
  readonly target?: string;
  /** Where the definition came from, for error messages ("knockd.conf:12"). */
  readonly origin: string;
}

export interface Door {
  readonly name: string;
  readonly open: readonly PortSpec[];
  /** 0 = until closed. */
  readonly ttlMs: number;
  /** How much of the client's network a grant covers (core/scope.ts); absent = the defaults. */
  readonly scope?: DoorScope;
}

/** One (ip, port) pass-through in the host firewall. expiresAt null = no timeout. */
export interface FirewallEntry {
  /** The address, or a network address when `prefix` is set. */
  readonly ip: string;
  readonly family: Family;
  /** Present only for a network narrower than the host width (a scoped grant). */
  readonly prefix?: number;
  readonly port: number;
  readonly proto: Proto;
  readonly expiresAt: number | null;
}

export type FirewallOp =
  /** fresh: the planner saw no such entry, so a plain add will do (no timeout to refresh). */
  | { readonly op: 'add'; readonly entry: FirewallEntry; readonly fresh?: boolean }
  | { readonly op: 'remove'; readonly entry: FirewallEntry };

/**
 * What proves a client, from any source: the one input of the intake service, which turns it
 * into a grant (or a close, or a knockd command).
 */
export type Proof =
  /** A knock sequence completed, seen by the pcap engine or reported by the kernel engine. */
  | {
      readonly kind: 'knock';
      readonly engine: 'pcap' | 'kernel';
      readonly sequenceId: string;
      readonly door: string;
      readonly ip: string;
      readonly family: Family;
      readonly action: SequenceAction;
      /** A kernel completion the daemon never heard of, found in the kernel's own record by the repair. */
      readonly adopted?: { readonly completedAt: number };
    }
  /** A signed knock queued by a relay and verified again by this gateway. */
  | { readonly kind: 'relay'; readonly door: string; readonly ip: string; readonly client: string; readonly requestId: string }
  /**
   * An SPA packet (fwknop 2.x) that authenticated, that its stanza allows, and whose digest no
   * node had seen: open the stanza's door for `ip` with the requested ports, for `ttlMs`.
   */
  | {
      readonly kind: 'spa';
      /** The stanza's name (its door). */
      readonly door: string;
      /** The allow IP: the address in the message, or the packet's source for fwknop -s. */
      readonly ip: string;
      readonly family: Family;
      readonly ports: readonly PortSpec[];
      /** > 0: an SPA grant always expires. */
      readonly ttlMs: number;
      /** The packet's source address (differs from `ip` with fwknop -a). */
      readonly src: string;
      /** The message's user name (fwknop -U; the client's login by default). */
      readonly user: string;
    };

/** A completion the kernel engine recorded in a done set: which sequence (index into the config's list), who, when. */
export interface KernelCompletion {
  readonly sequenceIndex: number;
  readonly ip: string;
  readonly family: Family;
  /** Unix ms, to the second (nft reports whole seconds). */
  readonly completedAt: number;
}
