// fwknopd's access.conf, read unchanged with fwknopd 2.6.10's rules (server/access.c
// parse_access_file(), acc_data_is_valid(), set_acc_defaults()): stanzas start at SOURCE, a
// trailing ':' on a name is dropped, __CHANGEME__ keys are refused, FW_ACCESS_TIMEOUT defaults to
// 30 s and MAX_FW_TIMEOUT to 300 s. Where fwknopd would log "Ignoring unknown access parameter"
// or quietly do something knockgw does not (GnuPG, NAT, commands, include files), this is an
// error naming the line; so is a stanza without an HMAC key, which fwknopd allows for old clients.
import type { PortSpec } from '../core/grant.ts';
import { parseCidr, type Cidr } from '../core/cidr.ts';
import { FWKNOP_DEFAULTS, type HmacDigest, type SpaStanza } from '../core/spa.ts';
import { fwknopFail, fwknopLines, fwknopYes, type FwknopFail, type FwknopLine } from './fwknop-lines.ts';
import { netmaskPrefix, parseFwknopKey } from './fwknop-values.ts';

/** fwknopd's RCHK_MAX_FW_TIMEOUT. */
const MAX_TIMEOUT_S = 2 << 22;
const HMAC_DIGESTS: readonly HmacDigest[] = ['sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'];

const UNSUPPORTED: Readonly<Record<string, string>> = {
  '%include': 'include files are not read: put the stanzas in this file',
  '%include_folder': 'include folders are not read: put the stanzas in this file',
  '%include_keys': 'key files are not read: put KEY_BASE64 and HMAC_KEY_BASE64 in the stanza',
  FORCE_NAT: 'NAT access is not supported: knockgw opens ports on this host only',
  FORCE_SNAT: 'NAT access is not supported: knockgw opens ports on this host only',
  CMD_CYCLE_OPEN: 'commands are not run from SPA packets', CMD_CYCLE_CLOSE: 'commands are not run from SPA packets', CMD_CYCLE_TIMER: 'commands are not run from SPA packets',
  CMD_EXEC_USER: 'commands are not run from SPA packets', CMD_EXEC_GROUP: 'commands are not run from SPA packets',
  CMD_SUDO_EXEC_USER: 'commands are not run from SPA packets', CMD_SUDO_EXEC_GROUP: 'commands are not run from SPA packets',
};
/** Booleans knockgw can honour only as N. */
const ONLY_NO: Readonly<Record<string, string>> = {
  ENABLE_CMD_EXEC: 'commands are not run from SPA packets', ENABLE_CMD_SUDO_EXEC: 'commands are not run from SPA packets',
  FORCE_MASQUERADE: 'NAT access is not supported', DISABLE_DNAT: 'NAT access is not supported', FORWARD_ALL: 'NAT access is not supported',
};
const SUPPORTED = [
  'SOURCE', 'DESTINATION', 'OPEN_PORTS', 'RESTRICT_PORTS', 'KEY', 'KEY_BASE64', 'HMAC_KEY', 'HMAC_KEY_BASE64', 'HMAC_DIGEST_TYPE',
  'FW_ACCESS_TIMEOUT', 'MAX_FW_TIMEOUT', 'REQUIRE_SOURCE_ADDRESS', 'REQUIRE_SOURCE', 'REQUIRE_USERNAME', 'ENCRYPTION_MODE', 'ACCESS_EXPIRE', 'ACCESS_EXPIRE_EPOCH',
];

interface Draft {
  readonly start: FwknopLine;
  readonly index: number;
  readonly seen: Map<string, number>;
  source: 'any' | Cidr[];
  open: 'any' | PortSpec[];
  restrict: PortSpec[];
  key?: Buffer;
  hmacKey?: Buffer;
  hmacDigest: HmacDigest;
  ttlS: number;
  maxTtlS: number;
  requireSourceAddress: boolean;
  requireUsername?: string;
  expiresAt?: number;
}

export function parseFwknopAccess(text: string, path: string): SpaStanza[] {
  const fail = fwknopFail(path);
  const drafts: Draft[] = [];
  let current: Draft | undefined;
  for (const l of fwknopLines(text, fail)) {
    const name = l.name.endsWith(':') ? l.name.slice(0, -1) : l.name;
    if (name === 'SOURCE') {
      current = { start: l, index: drafts.length + 1, seen: new Map(), source: sourceList(l, fail), open: 'any', restrict: [], hmacDigest: 'sha256', ttlS: 0, maxTtlS: 0, requireSourceAddress: false };
      drafts.push(current);
      continue;
    }
    const unsupported = UNSUPPORTED[name] ?? (name.startsWith('GPG_') ? 'GnuPG is not supported: use KEY_BASE64 and HMAC_KEY_BASE64 (fwknop --key-gen)' : undefined);
    if (unsupported) fail(l.line, `${name}: ${unsupported}`);
    if (ONLY_NO[name] !== undefined) {
      if (fwknopYes(l.value)) fail(l.line, `${name} ${l.value}: ${ONLY_NO[name]}; remove the line or set it to N`);
      continue;
    }
    if (!SUPPORTED.includes(name)) fail(l.line, `unknown directive "${l.name}"${/[a-z]/.test(name) ? ' (fwknopd directive names are upper-case)' : ''}; knockgw reads ${SUPPORTED.join(', ')}`);
    if (!current) fail(l.line, `${name} comes before any SOURCE line: every stanza starts with SOURCE`);
    else applyDirective(current, name, l, fail);
  }
  if (drafts.length === 0) fail(1, 'no stanza: add at least "SOURCE ANY" with KEY_BASE64 and HMAC_KEY_BASE64 (fwknop --key-gen prints them)');
  return drafts.map((d) => finish(d, path, fail));
}

function applyDirective(d: Draft, name: string, l: FwknopLine, fail: FwknopFail): void {
  // KEY and KEY_BASE64 fill one slot, as do the HMAC pair and REQUIRE_SOURCE(_ADDRESS).
  const slot = name.replace(/_BASE64$/, '').replace(/^REQUIRE_SOURCE$/, 'REQUIRE_SOURCE_ADDRESS').replace(/_EPOCH$/, '');
  const earlier = d.seen.get(slot);
  if (earlier !== undefined) fail(l.line, `${name} repeats what line ${earlier} of this stanza set; keep one`);
  d.seen.set(slot, l.line);
  const v = l.value;
  switch (name) {
    case 'DESTINATION':
      if (v.toUpperCase() !== 'ANY') fail(l.line, `DESTINATION ${v}: only ANY is supported (SPA packets are accepted on every address of this host)`);
      return;
    case 'OPEN_PORTS': d.open = portList(l, fail); return;
    case 'RESTRICT_PORTS': d.restrict = portList(l, fail); return;
    case 'KEY': case 'KEY_BASE64': d.key = parseFwknopKey(l, name, 32, fail); return;
    case 'HMAC_KEY': case 'HMAC_KEY_BASE64': d.hmacKey = parseFwknopKey(l, name, 136, fail); return;
    case 'HMAC_DIGEST_TYPE': {
      const t = v.toLowerCase();
      if (t === 'md5') fail(l.line, 'HMAC_DIGEST_TYPE md5 is refused as too weak: use sha256 (fwknop --hmac-digest-type sha256)');
      d.hmacDigest = HMAC_DIGESTS.find((h) => h === t) ?? fail(l.line, `HMAC_DIGEST_TYPE "${v}" must be one of ${HMAC_DIGESTS.join(', ')}`);
      return;
    }
    case 'FW_ACCESS_TIMEOUT': d.ttlS = seconds(l, fail); return;
    case 'MAX_FW_TIMEOUT': d.maxTtlS = seconds(l, fail); return;
    case 'REQUIRE_SOURCE_ADDRESS': case 'REQUIRE_SOURCE': d.requireSourceAddress = fwknopYes(v); return;
    case 'REQUIRE_USERNAME': d.requireUsername = v; return;
    case 'ENCRYPTION_MODE':
      if (v.toUpperCase() !== 'CBC') fail(l.line, `ENCRYPTION_MODE ${v}: only CBC (fwknop's default) is supported`);
      return;
    case 'ACCESS_EXPIRE': d.expiresAt = expireDate(l, fail); return;
    case 'ACCESS_EXPIRE_EPOCH':
      if (!/^\d{1,12}$/.test(v)) fail(l.line, `ACCESS_EXPIRE_EPOCH "${v}" is not unix seconds`);
      d.expiresAt = Number(v) * 1000;
      return;
  }
}

function finish(d: Draft, path: string, fail: FwknopFail): SpaStanza {
  const at = d.start.line;
  if (!d.key) fail(at, `the stanza starting here has no KEY_BASE64 (or KEY): fwknop --key-gen prints one`);
  if (!d.hmacKey) fail(at, 'the stanza starting here has no HMAC_KEY_BASE64 (or HMAC_KEY): knockgw needs the HMAC to authenticate a packet before decrypting it (fwknop --key-gen prints one; clients add --use-hmac)');
  if (d.key.equals(d.hmacKey)) fail(at, 'the encryption key and the HMAC key are the same; fwknopd refuses that too');
  return {
    name: `fwknop-${d.index}`,
    origin: `${path}:${at}`,
    source: d.source,
    keys: { keyBase64: d.key.toString('base64'), hmacKeyBase64: d.hmacKey.toString('base64'), hmacDigest: d.hmacDigest },
    open: d.open,
    restrict: d.restrict,
    // fwknopd: a timeout below 1 means the default.
    ttlMs: (d.ttlS >= 1 ? d.ttlS : FWKNOP_DEFAULTS.fwAccessTimeoutS) * 1000,
    maxTtlMs: (d.maxTtlS >= 1 ? d.maxTtlS : FWKNOP_DEFAULTS.maxFwTimeoutS) * 1000,
    requireSourceAddress: d.requireSourceAddress,
    ...(d.requireUsername !== undefined ? { requireUsername: d.requireUsername } : {}),
    ...(d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {}),
  };
}

// expand_acc_int_list()/add_int_ent(): ANY, a.b.c.d, a.b.c.d/NN or a.b.c.d/m.m.m.m; IPv6 ranges
// are knockgw's addition (fwknopd 2.6 is IPv4 only).
function sourceList(l: FwknopLine, fail: FwknopFail): 'any' | Cidr[] {
  const items = l.value.split(',').map((s) => s.trim());
  if (items.some((s) => s.toUpperCase() === 'ANY')) return 'any';
  return items.map((item) => {
    const [addr = '', mask] = item.split('/');
    const prefix = mask !== undefined && mask.includes('.') ? netmaskPrefix(mask) ?? fail(l.line, `SOURCE "${item}": the netmask ${mask} is not contiguous ones then zeros`) : mask;
    const c = parseCidr(prefix === undefined ? addr : `${addr}/${prefix}`);
    return typeof c === 'string' ? fail(l.line, `SOURCE ${c}; write ANY, addresses and ranges separated by commas (e.g. 192.168.10.0/24,10.1.1.123)`) : c;
  });
}

// expand_acc_port_list(): "tcp/22, udp/53", protocol case-insensitive.
function portList(l: FwknopLine, fail: FwknopFail): PortSpec[] {
  return l.value.split(',').map((item): PortSpec => {
    const m = /^(tcp|udp)\/(\d{1,5})$/i.exec(item.trim());
    const port = Number(m?.[2] ?? 0);
    if (!m || port < 1 || port > 65535) fail(l.line, `${l.name} "${item.trim()}" is not proto/port (tcp/22, udp/53; ports 1-65535)`);
    return { proto: m?.[1]?.toLowerCase() === 'udp' ? 'udp' : 'tcp', port };
  });
}

function seconds(l: FwknopLine, fail: FwknopFail): number {
  if (!/^\d{1,8}$/.test(l.value) || Number(l.value) > MAX_TIMEOUT_S) fail(l.line, `${l.name} "${l.value}" is not a number of seconds 0-${MAX_TIMEOUT_S}`);
  return Number(l.value);
}

// add_acc_expire_time(): MM/DD/YYYY, midnight local time (mktime()).
function expireDate(l: FwknopLine, fail: FwknopFail): number {
  const m = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(l.value);
  const [month, day, year] = [Number(m?.[1]), Number(m?.[2]), Number(m?.[3])];
  const date = new Date(year, month - 1, day);
  if (!m || date.getMonth() !== month - 1 || date.getDate() !== day) fail(l.line, `ACCESS_EXPIRE "${l.value}" is not a date MM/DD/YYYY`);
  return date.getTime();
}
