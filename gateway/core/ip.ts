// Address parsing and the refusal rules: a grant must name exactly one routable host.
// Pure: no node:net here, so the core stays importable anywhere.
import { kgwError } from './errors.ts';

export type Family = 4 | 6;
export interface ParsedIp { readonly address: string; readonly family: Family }

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function v6Groups(text: string): number[] | undefined {
  let s = text.toLowerCase();
  const lastColon = s.lastIndexOf(':');
  const dotted = s.slice(lastColon + 1);
  if (dotted.includes('.')) {
    // A trailing dotted quad (::ffff:192.0.2.1) is two 16-bit groups.
    if (!V4.test(dotted)) return undefined;
    const [a = 0, b = 0, c = 0, d = 0] = dotted.split('.').map(Number);
    s = `${s.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parts = s.split('::');
  if (parts.length > 2) return undefined;
  const parse = (chunk: string): number[] | undefined => {
    if (chunk === '') return [];
    const out: number[] = [];
    for (const g of chunk.split(':')) {
      if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(parts[0] ?? '');
  const rest = parts.length === 2 ? parse(parts[1] ?? '') : [];
  if (!head || !rest) return undefined;
  if (parts.length === 2) {
    if (head.length + rest.length >= 8) return undefined;
    return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  }
  return head.length === 8 ? head : undefined;
}

/** RFC 5952 text of eight 16-bit groups. */
export function formatV6(groups: readonly number[]): string {
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses an IPv4 or IPv6 address (no prefix, no zone) into its canonical text. */
export function parseIp(text: string): ParsedIp | undefined {
  if (V4.test(text)) return { address: text, family: 4 };
  if (!text.includes(':') || text.includes('%')) return undefined;
  const groups = v6Groups(text);
  if (!groups) return undefined;
  // An IPv4-mapped address is the IPv4 host (what a dual-stack socket reports).
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const a = groups[6] ?? 0, b = groups[7] ?? 0;
    return { address: `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`, family: 4 };
  }
  return { address: formatV6(groups), family: 6 };
}

/** The address as a number (32 or 128 bits), for prefix matching. */
export function ipValue(ip: ParsedIp): bigint {
  const [parts, width] = ip.family === 4 ? [ip.address.split('.').map(Number), 8n] : [v6Groups(ip.address) ?? [], 16n];
  return parts.reduce((acc, part) => (acc << width) | BigInt(part), 0n);
}

/** Why an address must never be granted, or undefined when it is a single routable host. */
export function refusalReason(ip: ParsedIp): string | undefined {
  if (ip.family === 4) {
    const [a = 0, b = 0, c = 0, d = 0] = ip.address.split('.').map(Number);
    if (a === 0) return b === 0 && c === 0 && d === 0 ? 'unspecified address' : '"this network" (0.0.0.0/8)';
    if (a === 127) return 'loopback address';
    if (a >= 224 && a <= 239) return 'multicast address';
    if (a === 255 && b === 255 && c === 255 && d === 255) return 'broadcast address';
    if (a >= 240) return 'reserved address (240.0.0.0/4)';
    return undefined;
  }
  const groups = v6Groups(ip.address) ?? [];
  if (groups.every((g) => g === 0)) return 'unspecified address';
  // On the wire an IPv6 source of ::ffff:a.b.c.d is a spoof the kernel drops (it would pass for
  // an IPv4 host); a dual-stack socket's mapped address is parsed as IPv4 before it gets here.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return 'IPv4-mapped address';
  if (groups.slice(0, 7).every((g) => g === 0) && groups[7] === 1) return 'loopback address';
  if (((groups[0] ?? 0) & 0xff00) === 0xff00) return 'multicast address';
  return undefined;
}

/** Parses and validates an address that is about to be granted; throws a coded error otherwise. */
export function grantableIp(text: string): ParsedIp {
  const ip = parseIp(text.trim());
  if (!ip) throw kgwError('KGW_IP_INVALID', `"${text}" is not an IPv4 or IPv6 host address`, { ip: text });
  const reason = refusalReason(ip);
  if (reason) throw kgwError('KGW_IP_REFUSED', `refusing to grant ${ip.address}: ${reason}`, { ip: ip.address, reason });
  return ip;
}
