// Address ranges, IPv4 and IPv6: "203.0.113.0/24", "2001:db8::/32", or one host. Pure.
import { ipValue, parseIp, type Family, type ParsedIp } from './ip.ts';

export interface Cidr {
  readonly family: Family;
  /** The network address with the host bits cleared. */
  readonly base: bigint;
  readonly prefix: number;
  /** Canonical text ("203.0.113.0/24"). */
  readonly text: string;
}

function mask(family: Family, prefix: number): bigint {
  const width = family === 4 ? 32n : 128n;
  return ((1n << width) - 1n) ^ ((1n << (width - BigInt(prefix))) - 1n);
}

/**
 * A range or a single host, or a description of what is wrong. Host bits under the prefix are
 * cleared, as fwknopd does with "10.0.0.1/24". A /0 is refused: that is "any", say so instead.
 */
export function parseCidr(text: string): Cidr | string {
  const [addr = '', prefixText, extra] = text.trim().split('/');
  const ip = parseIp(addr);
  if (!ip || extra !== undefined) return `"${text}" is not an address or a range such as 203.0.113.0/24 or 2001:db8::/32`;
  const max = ip.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 1 && prefix <= max)) return `"${text}": the prefix length must be 1-${max}${prefix === 0 ? ' (for every address write ANY)' : ''}`;
  const base = ipValue(ip) & mask(ip.family, prefix);
  return { family: ip.family, base, prefix, text: `${formatBase(ip.family, base)}/${prefix}` };
}

function formatBase(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return parseIp(groups.join(':'))?.address ?? groups.join(':');
}

export function cidrContains(net: Cidr, ip: ParsedIp): boolean {
  return net.family === ip.family && (ipValue(ip) & mask(net.family, net.prefix)) === net.base;
}
