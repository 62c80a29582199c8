// Single Packet Authorization (fwknop 2.x) once a packet has authenticated: which stanza, which
// address, which ports, for how long. fwknopd 2.6.10's rules (server/incoming_spa.c,
// server/access.c) with deliberate differences, each safer: command and NAT messages are refused
// outright, an address that must never be granted (core/ip.ts) is refused, and FW_ACCESS_TIMEOUT
// is capped by MAX_FW_TIMEOUT as fwknopd's own start-up warning claims it is. One addition:
// IPv6 senders, SOURCE ranges and allow IPs (fwknopd 2.6 is IPv4 only; "0.0.0.0" still means
// "my source address", whatever the family, as in fwknop's unreleased ipv6 branch).
// Pure: the decoder (gateway/protocol/fwknop.ts) is passed in.
import type { PortSpec } from './grant.ts';
import { cidrContains, type Cidr } from './cidr.ts';
import { parseIp, refusalReason, type Family } from './ip.ts';
import type { Door } from './types.ts';

export type HmacDigest = 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sha3_256' | 'sha3_512';
/** The digest inside the encrypted message; the client picks it (fwknop -m), so MD5 can appear. */
export type MessageDigest = 'md5' | HmacDigest;

/** fwknop's message types (lib/fko.h). Only access (1) and access with a client timeout (3) grant. */
export const SPA_TYPE = {
  command: 0, access: 1, natAccess: 2, clientTimeoutAccess: 3, clientTimeoutNatAccess: 4, localNatAccess: 5, clientTimeoutLocalNatAccess: 6,
} as const;

/** fwknopd's defaults (server/fwknopd_common.h). */
export const FWKNOP_DEFAULTS = { port: 62201, maxPacketAgeS: 120, fwAccessTimeoutS: 30, maxFwTimeoutS: 300 } as const;

/** The allow IP a client sends for "use the address this packet came from" (fwknop -s). */
export const USE_SOURCE_IP = '0.0.0.0';

/** Secrets of one stanza, base64 of the raw bytes (KEY_BASE64 / HMAC_KEY_BASE64; a KEY passphrase is its bytes). */
export interface SpaKeys {
  readonly keyBase64: string;
  readonly hmacKeyBase64: string;
  readonly hmacDigest: HmacDigest;
}

/** One access.conf stanza (or YAML spa.access entry), compiled. */
export interface SpaStanza {
  /** The door its grants belong to. */
  readonly name: string;
  /** Where it was defined ("access.conf:12"). */
  readonly origin: string;
  /** SOURCE: the packet's sender must be in one of these; 'any' = ANY. */
  readonly source: 'any' | readonly Cidr[];
  readonly keys: SpaKeys;
  /** OPEN_PORTS; 'any' = whatever the client asks for (fwknopd without OPEN_PORTS). */
  readonly open: 'any' | readonly PortSpec[];
  /** RESTRICT_PORTS: never opened, whatever OPEN_PORTS says. */
  readonly restrict: readonly PortSpec[];
  /** FW_ACCESS_TIMEOUT, when the client names no timeout. */
  readonly ttlMs: number;
  /** MAX_FW_TIMEOUT: the cap on any timeout. */
  readonly maxTtlMs: number;
  /** REQUIRE_SOURCE_ADDRESS: refuse "use my source address" (0.0.0.0). */
  readonly requireSourceAddress: boolean;
  /** REQUIRE_USERNAME. */
  readonly requireUsername?: string;
  /** ACCESS_EXPIRE / ACCESS_EXPIRE_EPOCH, unix ms: the stanza grants nothing after it. */
  readonly expiresAt?: number;
}

/** A decrypted message whose digest checked (fields as fwknop's lib/fko_decode.c reads them). */
export interface SpaMessage {
  readonly rand: string;
  readonly user: string;
  /** Unix seconds, by the client's clock. */
  readonly timestamp: number;
  readonly version: string;
  readonly type: number;
  /** Canonical text; USE_SOURCE_IP asks for the packet's source address. */
  readonly allowIp: string;
  /** What an access message asks to open (empty for a command message). */
  readonly ports: readonly PortSpec[];
  readonly command?: string;
  readonly natAccess?: string;
  readonly serverAuth?: string;
  /** Seconds (fwknop -f); types 3, 4 and 6. */
  readonly clientTimeout?: number;
  readonly digest: MessageDigest;
}

export type SpaDecodeFailure = 'size' | 'not-base64' | 'salted-prefix' | 'hmac' | 'ciphertext' | 'decrypt' | 'format' | 'digest';

export type SpaDecoded =
  | { readonly ok: true; readonly message: SpaMessage; readonly packetDigest: string }
  | { readonly ok: false; readonly reason: SpaDecodeFailure; readonly detail: string };

export type SpaDecoder = (payload: Uint8Array, keys: SpaKeys) => SpaDecoded;

export type SpaDenyReason =
  | 'stanza-expired' | 'message-type' | 'stale' | 'future' | 'source-required' | 'ip-refused' | 'username' | 'port-restricted' | 'port-not-allowed';

export interface SpaGrant {
  readonly ip: string;
  readonly family: Family;
  readonly ports: readonly PortSpec[];
  readonly ttlMs: number;
  readonly stanza: SpaStanza;
}

export type SpaDecision = { readonly grant: SpaGrant } | { readonly deny: SpaDenyReason; readonly detail: string };

export interface SpaContext {
  /** The packet's source address. */
  readonly src: string;
  /** Unix milliseconds. */
  readonly now: number;
  /** MAX_SPA_PACKET_AGE: how far the message timestamp may be from now, either way. */
  readonly maxPacketAgeMs: number;
}

const deny = (reason: SpaDenyReason, detail: string): SpaDecision => ({ deny: reason, detail });
const samePort = (a: PortSpec, b: PortSpec): boolean => a.port === b.port && a.proto === b.proto;
const portText = (p: PortSpec): string => `${p.proto}/${p.port}`;

function typeRefusal(type: number): string | undefined {
  if (type === SPA_TYPE.access || type === SPA_TYPE.clientTimeoutAccess) return undefined;
  if (type === SPA_TYPE.command) return 'a command message (fwknop -C): knockgw never runs commands sent in a packet';
  return `a NAT access message (type ${type}, fwknop -N/--nat-local): knockgw opens ports on this host only`;
}

/** The fwknopd decision for one stanza whose keys authenticated the message. */
export function decideSpa(stanza: SpaStanza, message: SpaMessage, ctx: SpaContext): SpaDecision {
  if (stanza.expiresAt !== undefined && ctx.now > stanza.expiresAt) return deny('stanza-expired', `stanza ${stanza.origin} expired at ${new Date(stanza.expiresAt).toISOString()}`);
  const refusedType = typeRefusal(message.type);
  if (refusedType) return deny('message-type', `refusing ${refusedType}`);

  // fwknopd compares whole seconds: |now - timestamp| > MAX_SPA_PACKET_AGE is refused.
  const skewS = Math.floor(ctx.now / 1000) - message.timestamp;
  const maxS = Math.floor(ctx.maxPacketAgeMs / 1000);
  if (skewS > maxS) return deny('stale', `the packet is ${skewS} s old (at most ${maxS} s): a replay, or the client's clock is behind`);
  if (-skewS > maxS) return deny('future', `the packet is dated ${-skewS} s ahead (at most ${maxS} s): the client's clock is ahead`);

  let ipText = message.allowIp;
  if (ipText === USE_SOURCE_IP) {
    if (stanza.requireSourceAddress) return deny('source-required', `the client asked for its source address (fwknop -s) but stanza ${stanza.origin} has REQUIRE_SOURCE_ADDRESS: use -a IP or -R`);
    ipText = ctx.src;
  }
  const ip = parseIp(ipText);
  if (!ip) return deny('ip-refused', `"${ipText}" is not an IP address`);
  const refusal = refusalReason(ip);
  if (refusal) return deny('ip-refused', `refusing to grant ${ip.address}: ${refusal}`);

  if (stanza.requireUsername !== undefined && message.user !== stanza.requireUsername) {
    return deny('username', `user "${message.user}" is not the REQUIRE_USERNAME of stanza ${stanza.origin}`);
  }

  const restricted = message.ports.filter((p) => stanza.restrict.some((r) => samePort(p, r)));
  if (restricted.length > 0) return deny('port-restricted', `${restricted.map(portText).join(',')} is in RESTRICT_PORTS of stanza ${stanza.origin}`);
  const { open } = stanza;
  const notAllowed = open === 'any' ? [] : message.ports.filter((p) => !open.some((o) => samePort(p, o)));
  if (notAllowed.length > 0) return deny('port-not-allowed', `${notAllowed.map(portText).join(',')} is not in OPEN_PORTS of stanza ${stanza.origin}`);

  const ports = message.ports.filter((p, i) => message.ports.findIndex((q) => samePort(p, q)) === i);
  return { grant: { ip: ip.address, family: ip.family, ports, ttlMs: grantTtlMs(stanza, message.clientTimeout), stanza } };
}

/** fwknopd's set_timeout(): a client timeout (seconds, > 0) capped by MAX_FW_TIMEOUT, else FW_ACCESS_TIMEOUT. */
export function grantTtlMs(stanza: SpaStanza, clientTimeoutS: number | undefined): number {
  const wanted = clientTimeoutS !== undefined && clientTimeoutS > 0 ? clientTimeoutS * 1000 : stanza.ttlMs;
  return Math.min(wanted, stanza.maxTtlMs);
}

export function sourceMatches(stanza: SpaStanza, src: string): boolean {
  if (stanza.source === 'any') return true;
  const ip = parseIp(src);
  return ip !== undefined && stanza.source.some((net) => cidrContains(net, ip));
}

export interface SpaPacket {
  readonly payload: Uint8Array;
  readonly src: string;
  /** Unix milliseconds. */
  readonly now: number;
}

export type SpaOutcome =
  | { readonly grant: SpaGrant; readonly message: SpaMessage; readonly packetDigest: string }
  | {
      readonly deny: SpaDenyReason | SpaDecodeFailure | 'no-stanza';
      readonly detail: string;
      /** Set when a stanza's keys authenticated the packet (its denial is the one reported). */
      readonly stanza?: SpaStanza;
      readonly message?: SpaMessage;
      readonly packetDigest?: string;
    };

/**
 * fwknopd's stanza loop: every stanza whose SOURCE holds the sender, in file order, tries its
 * keys; the first that authenticates and allows the request wins. A denial reports the first
 * stanza that authenticated (the user's stanza), else the first stanza's decode failure.
 * Replay is the caller's: check `packetDigest` against the shared cache before granting.
 */
export function authorizeSpa(packet: SpaPacket, access: readonly SpaStanza[], maxPacketAgeMs: number, decode: SpaDecoder): SpaOutcome {
  let firstFailure: { deny: SpaDecodeFailure; detail: string } | undefined;
  let authenticated: Extract<SpaOutcome, { deny: unknown }> | undefined;
  for (const stanza of access) {
    if (!sourceMatches(stanza, packet.src)) continue;
    const decoded = decode(packet.payload, stanza.keys);
    if (!decoded.ok) {
      firstFailure ??= { deny: decoded.reason, detail: `${decoded.detail} (stanza ${stanza.origin})` };
      continue;
    }
    const decision = decideSpa(stanza, decoded.message, { src: packet.src, now: packet.now, maxPacketAgeMs });
    if ('grant' in decision) return { grant: decision.grant, message: decoded.message, packetDigest: decoded.packetDigest };
    authenticated ??= { deny: decision.deny, detail: decision.detail, stanza, message: decoded.message, packetDigest: decoded.packetDigest };
  }
  return authenticated ?? firstFailure ?? { deny: 'no-stanza', detail: `no stanza's SOURCE holds ${packet.src}` };
}

/**
 * How long a packet digest must stay in the replay cache: a message is accepted while its
 * timestamp is within MAX_SPA_PACKET_AGE either side of now, so for twice that, plus the
 * rounding to whole seconds.
 */
export function replayWindowMs(maxPacketAgeMs: number): number {
  return 2 * maxPacketAgeMs + 2000;
}

/** The door an SPA stanza's grants belong to (for the grant service). 'any' opens nothing by default. */
export function spaDoor(stanza: SpaStanza): Door {
  return { name: stanza.name, open: stanza.open === 'any' ? [] : stanza.open, ttlMs: grantTtlMs(stanza, undefined) };
}

/** Every port some stanza names in OPEN_PORTS (what the base rules must close). */
export function spaOpenPorts(access: readonly SpaStanza[]): PortSpec[] {
  const out: PortSpec[] = [];
  for (const s of access) if (s.open !== 'any') for (const p of s.open) if (!out.some((o) => samePort(o, p))) out.push(p);
  return out;
}
