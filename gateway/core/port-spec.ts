// The port and flag notations users write in knockd.conf, the YAML config and on the command line
// ("9000:udp", "22/tcp", "syn,!ack"), parsed without I/O so the config, the CLI and knockd's
// one_time_sequences file (an adapter) read them the same way.
import { kgwError } from './errors.ts';
import type { PortSpec } from './grant.ts';
import { TCP } from './types.ts';
import type { TcpFlagMatch } from './types.ts';

/** knockd's SEQ_MAX. */
export const MAX_SEQUENCE_LENGTH = 32;

function portNumber(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

function protoOf(text: string | undefined): PortSpec['proto'] | undefined {
  if (text === undefined) return 'tcp';
  const p = text.trim().toLowerCase();
  return p === 'tcp' || p === 'udp' ? p : undefined;
}

/** A knock port as knockd writes it ("9000", "9000:udp"), or a description of what is wrong. */
export function checkPortSpec(text: string): PortSpec | string {
  const [portText = '', proto, extra] = text.trim().split(':');
  const port = portNumber(portText.trim());
  const p = protoOf(proto);
  if (port === undefined || p === undefined || extra !== undefined) {
    return `"${text}" is not a knock port: expected PORT or PORT:tcp or PORT:udp, with PORT 1-65535 (e.g. 7000 or 9000:udp)`;
  }
  return { port, proto: p };
}

/** An opened port as written in YAML or on the command line ("22/tcp", "53/udp", "22"), or what is wrong. */
export function checkOpenSpec(text: string): PortSpec | string {
  const [portText = '', proto, extra] = text.trim().split('/');
  const port = portNumber(portText.trim());
  const p = protoOf(proto);
  if (port === undefined || p === undefined || extra !== undefined) {
    return `"${text}" is not a port to open: expected PORT/tcp or PORT/udp, with PORT 1-65535 (e.g. 22/tcp)`;
  }
  return { port, proto: p };
}

export function parsePortSpec(text: string): PortSpec {
  const r = checkPortSpec(text);
  if (typeof r === 'string') throw kgwError('KGW_PORT_INVALID', r, { value: text });
  return r;
}

export function parseOpenSpec(text: string): PortSpec {
  const r = checkOpenSpec(text);
  if (typeof r === 'string') throw kgwError('KGW_PORT_INVALID', r, { value: text });
  return r;
}

const FLAG_BITS: Readonly<Record<string, number>> = { fin: TCP.FIN, syn: TCP.SYN, rst: TCP.RST, psh: TCP.PSH, ack: TCP.ACK, urg: TCP.URG };

/** knockd `tcpflags` ("syn", "syn,!ack", case-insensitive), or a description of what is wrong. */
export function checkTcpFlags(text: string): TcpFlagMatch | string {
  let require = 0;
  let forbid = 0;
  for (const raw of text.split(',')) {
    const item = raw.trim().toLowerCase();
    const negated = item.startsWith('!');
    const bit = FLAG_BITS[negated ? item.slice(1) : item];
    if (bit === undefined) {
      return `"${raw.trim()}" in tcpflags "${text}" is not a TCP flag: use fin, syn, rst, psh, ack, urg, each optionally negated with "!", separated by commas (e.g. syn,!ack)`;
    }
    if ((negated ? require : forbid) & bit) return `tcpflags "${text}" both requires and forbids ${item.replace('!', '')}`;
    if (negated) forbid |= bit;
    else require |= bit;
  }
  return { require, forbid };
}

export function sameSequence(a: readonly PortSpec[], b: readonly PortSpec[]): boolean {
  return a.length === b.length && a.every((p, i) => p.port === b[i]?.port && p.proto === b[i]?.proto);
}
