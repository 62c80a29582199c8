// Test frames carry what a real sender puts on the wire: a valid TCP/UDP checksum (the pcap
// engine drops packets whose checksum does not verify, as the kernel does).

function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

function sum16(b: readonly number[], from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i += 2) sum += ((b[i] ?? 0) << 8) | (i + 1 < to ? (b[i + 1] ?? 0) : 0);
  return sum;
}

/** The transport layer of an IPv4/IPv6 packet: where it starts, its protocol and the address span. */
function locate(b: readonly number[]): { l4: number; end: number; proto: number; src: number; addr: number } | undefined {
  const v = (b[0] ?? 0) >> 4;
  if (v === 4) {
    const total = ((b[2] ?? 0) << 8) | (b[3] ?? 0);
    if (total === 0 || total > b.length) return undefined;
    return { l4: ((b[0] ?? 0) & 15) * 4, end: total, proto: b[9] ?? 0, src: 12, addr: 4 };
  }
  if (v !== 6) return undefined;
  const end = 40 + (((b[4] ?? 0) << 8) | (b[5] ?? 0));
  if (end > b.length) return undefined;
  let next = b[6] ?? 0;
  let p = 40;
  while (next !== 6 && next !== 17) {
    if (next === 0 || next === 43 || next === 60) [next, p] = [b[p] ?? 0, p + ((b[p + 1] ?? 0) + 1) * 8];
    else if (next === 44) [next, p] = [b[p] ?? 0, p + 8];
    else if (next === 51) [next, p] = [b[p] ?? 0, p + ((b[p + 1] ?? 0) + 2) * 4];
    else return undefined;
    if (p > end) return undefined;
  }
  return { l4: p, end, proto: next, src: 8, addr: 16 };
}

/** The same IP packet with its TCP/UDP checksum filled in (left alone when it cannot be computed). */
export function withChecksum(packet: readonly number[]): number[] {
  const b = [...packet];
  const at = locate(b);
  if (!at) return b;
  const field = at.l4 + (at.proto === 6 ? 16 : 6);
  if (field + 2 > at.end) return b;
  b[field] = 0;
  b[field + 1] = 0;
  const len = at.end - at.l4;
  const pseudo = sum16(b, at.src, at.src + 2 * at.addr) + at.proto + len;
  let csum = ~fold(pseudo + sum16(b, at.l4, at.end)) & 0xffff;
  if (at.proto === 17 && csum === 0) csum = 0xffff;
  b[field] = csum >> 8;
  b[field + 1] = csum & 255;
  return b;
}

/** The same packet as a local sender leaves it for offload: only the pseudo-header sum in the field. */
export function withPartialChecksum(packet: readonly number[]): number[] {
  const b = [...packet];
  const at = locate(b);
  if (!at) return b;
  const field = at.l4 + (at.proto === 6 ? 16 : 6);
  const pseudo = fold(sum16(b, at.src, at.src + 2 * at.addr) + at.proto + (at.end - at.l4));
  b[field] = pseudo >> 8;
  b[field + 1] = pseudo & 255;
  return b;
}
