// The YAML `spa:` section: the same structure --fwknop-access fills from access.conf, with
// fwknopd's defaults and limits. Keys are checked here so a bad one fails at start, with its line.
import { z } from 'zod';
import { parseCidr, type Cidr } from '../core/cidr.ts';
import { FWKNOP_DEFAULTS, type HmacDigest } from '../core/spa.ts';

/** fwknopd's RCHK_MAX_FW_TIMEOUT and RCHK_MAX_SPA_PACKET_AGE. */
const MAX_TIMEOUT_S = 2 << 22;
const MAX_PACKET_AGE_S = 100000;
const HMAC_DIGESTS = ['sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const satisfies readonly HmacDigest[];

function keyBytes(what: string, max: number) {
  return z.string().transform((s, ctx) => {
    const ok = /^[A-Za-z0-9+/]+={0,2}$/.test(s) && s.replace(/=+$/, '').length % 4 !== 1;
    const bytes = ok ? Buffer.from(s, 'base64') : Buffer.alloc(0);
    if (bytes.length < 1 || bytes.length > max) {
      ctx.addIssue({ code: 'custom', message: `${what} must be base64 of 1-${max} bytes (fwknop --key-gen prints one)` });
      return z.NEVER;
    }
    return bytes.toString('base64');
  });
}

function passphrase(what: string, max: number) {
  return z.string().transform((s, ctx) => {
    const n = Buffer.byteLength(s, 'utf8');
    if (n < 1 || n > max || s !== s.trim()) {
      ctx.addIssue({ code: 'custom', message: `${what} must be 1-${max} bytes without leading or trailing blanks` });
      return z.NEVER;
    }
    return Buffer.from(s, 'utf8').toString('base64');
  });
}

const sourceSchema = z.array(z.string()).min(1).transform((items, ctx): 'any' | Cidr[] => {
  if (items.some((s) => s.trim().toUpperCase() === 'ANY')) return 'any';
  const out: Cidr[] = [];
  items.forEach((s, i) => {
    const c = parseCidr(s);
    if (typeof c === 'string') ctx.addIssue({ code: 'custom', path: [i], message: `${c}; or write ANY` });
    else out.push(c);
  });
  return out;
});

const seconds = (max: number) => z.number().int().min(1).max(max);

export function spaAccessSchema<P extends z.ZodType, N extends z.ZodType>(openPort: P, name: N) {
  return z
    .strictObject({
      name,
      /** SOURCE: ANY, or addresses and ranges (IPv4 and IPv6). */
      source: sourceSchema.default('any'),
      /** KEY_BASE64 (or key: KEY, a passphrase). */
      keyBase64: keyBytes('keyBase64', 32).optional(),
      key: passphrase('key', 32).optional(),
      /** HMAC_KEY_BASE64 (or hmacKey: HMAC_KEY). */
      hmacKeyBase64: keyBytes('hmacKeyBase64', 136).optional(),
      hmacKey: passphrase('hmacKey', 136).optional(),
      hmacDigest: z.enum(HMAC_DIGESTS).default('sha256'),
      /** OPEN_PORTS: what a request may open. */
      open: z.array(openPort).min(1, 'an SPA door must open at least one port'),
      /** RESTRICT_PORTS. */
      restrict: z.array(openPort).default([]),
      /** FW_ACCESS_TIMEOUT, seconds. */
      ttl: seconds(MAX_TIMEOUT_S).default(FWKNOP_DEFAULTS.fwAccessTimeoutS),
      /** MAX_FW_TIMEOUT, seconds: the cap on a client's own timeout (fwknop -f). */
      maxTtl: seconds(MAX_TIMEOUT_S).default(FWKNOP_DEFAULTS.maxFwTimeoutS),
      requireSourceAddress: z.boolean().default(false),
      requireUsername: z.string().min(1).optional(),
    })
    .superRefine((a, ctx) => {
      const pairs = [['keyBase64', 'key'], ['hmacKeyBase64', 'hmacKey']] as const;
      for (const [b64, plain] of pairs) {
        if ((a[b64] === undefined) === (a[plain] === undefined)) ctx.addIssue({ code: 'custom', path: [b64], message: `give exactly one of ${b64} and ${plain}` });
      }
      const key = a.keyBase64 ?? a.key;
      if (key !== undefined && key === (a.hmacKeyBase64 ?? a.hmacKey)) ctx.addIssue({ code: 'custom', path: ['hmacKeyBase64'], message: 'the HMAC key must differ from the encryption key' });
    });
}

export function spaSchema<A extends z.ZodType>(access: A) {
  return z.strictObject({
    /** UDP port (fwknopd's UDPSERV_PORT / PCAP_FILTER port). */
    port: z.number().int().min(1).max(65535).default(FWKNOP_DEFAULTS.port),
    /** MAX_SPA_PACKET_AGE, seconds. */
    maxPacketAge: seconds(MAX_PACKET_AGE_S).default(FWKNOP_DEFAULTS.maxPacketAgeS),
    access: z.array(access).min(1, 'define at least one SPA door under spa.access'),
  });
}
