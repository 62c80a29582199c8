// The decrypted SPA message, field by field, as fwknop's lib/fko_decode.c and lib/fko_message.c
// read it:
//   rand(16 digits):b64(user):timestamp:version:type:b64(message)[:b64(nat)][:b64(server auth)][:client timeout]:digest
// message = "ip,proto/port[,proto/port…]" ("ip,command" for type 0); the digest is unpadded base64
// of everything before its colon, its length naming the hash (SHA3 shares SHA-256's and SHA-512's).
import type { PortSpec } from '../core/grant.ts';
import { parseIp } from '../core/ip.ts';
import { SPA_TYPE, type MessageDigest, type SpaMessage } from '../core/spa.ts';
import { b64Decode, b64DigestLength, b64Unpadded, digestB64, sameText } from './fwknop-crypto.ts';

/** fwknop's limits (lib/fko_limits.h). */
const MAX_USERNAME = 64;
const MAX_MESSAGE = 256;
const MAX_VERSION = 8;
const MAX_CLIENT_TIMEOUT = 2 << 15;
const MIN_FIELDS = 6;
const RAND = /^\d{16}$/;
const TIMESTAMP = /^\d{1,12}$/;

// Tried in this order for a digest of each length (lib/fko_decode.c verify_digest()).
const BY_LENGTH: ReadonlyMap<number, readonly MessageDigest[]> = new Map(
  (['md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const).reduce<Map<number, MessageDigest[]>>((m, d) => {
    const n = b64DigestLength(d);
    m.set(n, [...(m.get(n) ?? []), d]);
    return m;
  }, new Map()),
);

const HAS_TIMEOUT: ReadonlySet<number> = new Set([SPA_TYPE.clientTimeoutAccess, SPA_TYPE.clientTimeoutNatAccess, SPA_TYPE.clientTimeoutLocalNatAccess]);
const HAS_NAT: ReadonlySet<number> = new Set([SPA_TYPE.natAccess, SPA_TYPE.clientTimeoutNatAccess, SPA_TYPE.localNatAccess, SPA_TYPE.clientTimeoutLocalNatAccess]);

export type ParsedPlaintext = { readonly ok: true; readonly message: SpaMessage } | { readonly ok: false; readonly reason: 'format' | 'digest'; readonly detail: string };

// Thrown only inside parsePlaintext(), which turns it into a 'format' result.
class Malformed extends Error {}
const fail = (detail: string): never => {
  throw new Malformed(detail);
};

function b64Field(text: string | undefined, what: string, max: number): string {
  if (text === undefined || text === '') return fail(`the ${what} field is missing`);
  if (text.length > max) return fail(`the ${what} field is longer than ${max} characters`);
  return b64Decode(text)?.toString('latin1') ?? fail(`the ${what} field is not base64`);
}

// lib/fko_user.c validate_username(): printable, none of " / \ [ ] : ; | = , + * ? < >
function checkUser(user: string): string {
  if (user === '' || !/^[\x20-\x7e]+$/.test(user) || /["/\\[\]:;|=,+*?<>]/.test(user)) fail(`the user name "${user}" has characters fwknop does not allow`);
  return user;
}

function allowIp(text: string): string {
  const ip = parseIp(text);
  return ip ? ip.address : fail(`"${text}" is not an IPv4 or IPv6 address`);
}

function port(text: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : 0;
  return n >= 1 && n <= 65535 ? n : fail(`"${text}" is not a port 1-65535`);
}

/** "ip,tcp/22,udp/53" (lib/fko_message.c validate_access_msg(); fwknopd opens tcp and udp only). */
function accessRequest(msg: string): { allowIp: string; ports: PortSpec[] } {
  const [ipText = '', ...specs] = msg.split(',');
  if (specs.length === 0) fail(`the access request "${msg}" names no port`);
  const ports = specs.map((spec): PortSpec => {
    const m = /^(tcp|udp)\/(.*)$/.exec(spec);
    return m ? { proto: m[1] === 'udp' ? 'udp' : 'tcp', port: port(m[2] ?? '') } : fail(`"${spec}" is not tcp/PORT or udp/PORT`);
  });
  return { allowIp: allowIp(ipText), ports };
}

/** "host,port" (validate_nat_access_msg()); kept as text: NAT requests are refused later. */
function natRequest(nat: string): string {
  const [host = '', p, extra] = nat.split(',');
  if (p === undefined || extra !== undefined || host === '' || host.length > 255 || /[ /?"'\\]/.test(host)) fail(`"${nat}" is not a NAT request host,port`);
  port(p ?? '');
  return nat;
}

function fieldsOf(type: number, body: string, rest: readonly string[]): Pick<SpaMessage, 'allowIp' | 'ports' | 'command' | 'natAccess' | 'serverAuth' | 'clientTimeout'> {
  // parse_msg_type(): fields after the type field, digest excluded.
  const maxRest = type <= SPA_TYPE.access ? 1 : HAS_NAT.has(type) && HAS_TIMEOUT.has(type) ? 3 : 2;
  if (rest.length > maxRest) fail(`a type ${type} message has ${rest.length} fields after its request (at most ${maxRest})`);
  let command: string | undefined;
  let request: { allowIp: string; ports: PortSpec[] };
  if (type === SPA_TYPE.command) {
    const comma = body.indexOf(',');
    if (comma < 0 || comma === body.length - 1) fail(`the command message "${body}" has no command`);
    request = { allowIp: allowIp(body.slice(0, comma)), ports: [] };
    command = body.slice(comma + 1);
  } else {
    request = accessRequest(body);
  }
  const tail = [...rest];
  const natAccess = HAS_NAT.has(type) ? natRequest(b64Field(tail.shift(), 'NAT access', MAX_MESSAGE)) : undefined;
  let serverAuth: string | undefined;
  let clientTimeout: number | undefined;
  if (HAS_TIMEOUT.has(type)) {
    // parse_server_auth() then parse_client_timeout(): "[auth:]timeout".
    if (tail.length === 2) serverAuth = b64Field(tail.shift(), 'server auth', MAX_MESSAGE);
    const t = tail.shift() ?? '';
    if (!/^\d{1,6}$/.test(t) || Number(t) > MAX_CLIENT_TIMEOUT) fail(`the client timeout "${t}" is not a number of seconds 0-${MAX_CLIENT_TIMEOUT}`);
    clientTimeout = Number(t);
  } else if (tail.length === 1) {
    serverAuth = b64Field(tail.shift(), 'server auth', MAX_MESSAGE);
  }
  return {
    ...request,
    ...(command !== undefined ? { command } : {}),
    ...(natAccess !== undefined ? { natAccess } : {}),
    ...(serverAuth !== undefined ? { serverAuth } : {}),
    ...(clientTimeout !== undefined ? { clientTimeout } : {}),
  };
}

/** Parses a decrypted plaintext: digest first (it covers every field), then the fields. */
export function parsePlaintext(text: string): ParsedPlaintext {
  try {
    if (!/^[\x20-\x7e]*$/.test(text)) fail('the plaintext has non-printable characters');
    if (text.split(':').length - 1 < MIN_FIELDS) fail(`the plaintext has fewer than ${MIN_FIELDS + 1} fields`);
    const cut = text.lastIndexOf(':');
    const body = text.slice(0, cut);
    const digestText = text.slice(cut + 1);
    const candidates = BY_LENGTH.get(digestText.length) ?? fail(`a ${digestText.length}-character digest is no digest type fwknop knows`);
    const digest = candidates.find((d) => sameText(digestB64(d, body), digestText));
    if (!digest) return { ok: false, reason: 'digest', detail: `the message digest (${candidates.join(' or ')}) does not match its fields` };

    const [rand = '', userB64, ts = '', version = '', typeText = '', msgB64, ...rest] = body.split(':');
    if (!RAND.test(rand)) fail('the random value is not 16 digits');
    const user = checkUser(b64Field(userB64, 'user', MAX_USERNAME));
    if (!TIMESTAMP.test(ts) || Number(ts) > 0xffffffff) fail(`the timestamp "${ts}" is not a unix time`);
    if (version === '' || version.length > MAX_VERSION) fail(`the version "${version}" is not 1-${MAX_VERSION} characters`);
    if (!/^\d{1,2}$/.test(typeText) || Number(typeText) > SPA_TYPE.clientTimeoutLocalNatAccess) fail(`"${typeText}" is not an fwknop message type 0-6`);
    const type = Number(typeText);
    const fields = fieldsOf(type, b64Field(msgB64, 'message', MAX_MESSAGE), rest);
    return { ok: true, message: { rand, user, timestamp: Number(ts), version, type, ...fields, digest } };
  } catch (err) {
    if (err instanceof Malformed) return { ok: false, reason: 'format', detail: err.message };
    throw err;
  }
}

export interface PlaintextFields {
  readonly rand: string;
  readonly user: string;
  readonly timestamp: number;
  readonly version: string;
  readonly type: number;
  /** "ip,tcp/22" or "ip,command". */
  readonly message: string;
  readonly natAccess?: string;
  readonly clientTimeout?: number;
  readonly digest: MessageDigest;
}

/** The plaintext fwknop's fko_encode_spa_data() writes, digest appended. */
export function formatPlaintext(f: PlaintextFields): string {
  const b64 = (s: string): string => b64Unpadded(Buffer.from(s, 'latin1'));
  const fields = [f.rand, b64(f.user), String(f.timestamp), f.version, String(f.type), b64(f.message)];
  if (f.natAccess !== undefined) fields.push(b64(f.natAccess));
  if (f.clientTimeout !== undefined) fields.push(String(f.clientTimeout));
  const body = fields.join(':');
  return `${body}:${digestB64(f.digest, body)}`;
}
