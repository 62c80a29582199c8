// Packet sources backed by a tcpdump child writing pcap to stdout: the pcap engine's knock
// capture (only the knock ports pass the kernel filter) and the kernel engine's NFLOG reader.
// No native addon: tcpdump does the capturing (capture-process.ts), pcap-stream.ts the parsing.
import type { PortSpec } from '../../core/grant.ts';
import type { KnockSequence } from '../../core/types.ts';
import { kgwError } from '../../core/errors.ts';
import { startCapture, type CaptureOptions, type CaptureSource } from './process.ts';


export interface TcpdumpSourceOptions extends CaptureOptions {
  readonly interface: string;
  /** The knock ports to capture: the union of these sequences' ports and `ports`. */
  readonly sequences?: readonly KnockSequence[];
  /** Extra ports, e.g. every port of a one_time_sequences file (such sequences list none themselves). */
  readonly ports?: readonly PortSpec[];
  /** ANDed with the port filter, e.g. `dst host 198.18.0.1`. */
  readonly extraFilter?: string;
  /** Default false: capture only what is addressed to this host (`-p`). */
  readonly promiscuous?: boolean;
  /** Default 'in': knocks are inbound; outbound packets to the same ports are not knocks. */
  readonly direction?: 'in' | 'inout';
}

export interface NflogSourceOptions extends CaptureOptions {
  /** The `log group N` of the kernel engine's rules. */
  readonly group: number;
}


const DEFAULT_SNAPLEN = 1024;
const IFNAME = /^[A-Za-z0-9_.:@-]{1,64}$/;

/** BPF for "a packet to one of these ports": `tcp dst port 7000 or … or udp dst port 9000`. */
export function captureFilter(ports: readonly PortSpec[], extraFilter?: string): string {
  const seen = new Set<string>();
  const terms: string[] = [];
  for (const p of ports) {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
      throw kgwError('KGW_PORT_INVALID', `knock port ${String(p.port)}/${p.proto} is not a port number 1-65535`, { port: p.port, proto: p.proto });
    }
    const term = `${p.proto} dst port ${p.port}`;
    if (!seen.has(term)) {
      seen.add(term);
      terms.push(term);
    }
  }
  if (terms.length === 0) throw kgwError('KGW_CONFIG_INVALID', 'there are no knock ports to capture', {});
  // `tcp dst port` matches IPv6 only without extension headers: BPF cannot walk them. Knock
  // clients do not send any.
  const ports_ = terms.join(' or ');
  return extraFilter?.trim() ? `(${ports_}) and (${extraFilter.trim()})` : ports_;
}

export function createTcpdumpSource(opts: TcpdumpSourceOptions): CaptureSource {
  if (!IFNAME.test(opts.interface)) {
    throw kgwError('KGW_CONFIG_INVALID', `"${opts.interface}" is not an interface name`, { interface: opts.interface });
  }
  const ports = [...(opts.sequences ?? []).flatMap((s) => s.ports), ...(opts.ports ?? [])];
  const filter = captureFilter(ports, opts.extraFilter);
  const args = [
    ...BASE_ARGS, '-s', String(opts.snaplen ?? DEFAULT_SNAPLEN),
    ...(opts.promiscuous ? [] : ['-p']),
    ...((opts.direction ?? 'in') === 'in' ? ['-Q', 'in'] : []),
    '-i', opts.interface, '-w', '-', filter,
  ];
  return startCapture(args, opts.interface, opts);
}

export function createNflogSource(opts: NflogSourceOptions): CaptureSource {
  if (!Number.isInteger(opts.group) || opts.group < 0 || opts.group > 65535) {
    throw kgwError('KGW_CONFIG_INVALID', `NFLOG group ${opts.group} is not 0-65535`, { group: opts.group });
  }
  const args = [...BASE_ARGS, '-s', String(opts.snaplen ?? DEFAULT_SNAPLEN), '-i', `nflog:${opts.group}`, '-w', '-'];
  return startCapture(args, `nflog:${opts.group}`, opts);
}

/**
 * -U/--immediate-mode: no buffering between a knock and the daemon. -Z root: a credential change
 * would clear the parent-death signal (below), and with -w tcpdump only copies raw packets — none
 * of its dissectors run — for a daemon that is root anyway.
 */
const BASE_ARGS = ['-U', '-n', '--immediate-mode', '-Z', 'root'] as const;
