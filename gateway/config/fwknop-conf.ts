// fwknopd.conf, read unchanged (server/config_init.c, server/cmd_opts.h): the SPA port from
// UDPSERV_PORT (UDP server mode) or PCAP_FILTER, MAX_SPA_PACKET_AGE, PCAP_INTF. Directives that
// only tune fwknopd's own capture loop, logging, files or firewall chains are ignored (knockgw has
// its own); those that would change what a packet may do are honoured only at their default, and
// anything else, unknown names included, is an error naming the line.
import { FWKNOP_DEFAULTS } from '../core/spa.ts';
import { parseFwknopAccess } from './fwknop-access.ts';
import { fwknopFail, fwknopLines, fwknopYes, type FwknopFail, type FwknopLine } from './fwknop-lines.ts';
import type { SpaConfig } from './types.ts';

/** fwknopd's RCHK_MAX_SPA_PACKET_AGE. */
const MAX_PACKET_AGE_S = 100000;

const IGNORED = new Set([
  'PCAP_DISPATCH_COUNT', 'PCAP_LOOP_SLEEP', 'ENABLE_PCAP_PROMISC', 'ENABLE_PCAP_ANY_DIRECTION', 'EXIT_AT_INTF_DOWN', 'MAX_SNIFF_BYTES',
  'RULES_CHECK_THRESHOLD', 'CMD_EXEC_TIMEOUT', 'UDPSERV_SELECT_TIMEOUT', 'TCPSERV_PORT', 'LOCALE', 'SYSLOG_IDENTITY', 'SYSLOG_FACILITY', 'VERBOSE',
  'ENABLE_RULE_PREPEND', 'ENABLE_NAT_DNS', 'SNAT_TRANSLATE_IP',
  'FLUSH_IPT_AT_INIT', 'FLUSH_IPT_AT_EXIT', 'ENABLE_IPT_COMMENT_CHECK', 'IPT_INPUT_ACCESS', 'IPT_OUTPUT_ACCESS', 'IPT_FORWARD_ACCESS', 'IPT_DNAT_ACCESS', 'IPT_SNAT_ACCESS', 'IPT_MASQUERADE_ACCESS',
  'FLUSH_FIREWD_AT_INIT', 'FLUSH_FIREWD_AT_EXIT', 'ENABLE_FIREWD_COMMENT_CHECK', 'FIREWD_INPUT_ACCESS', 'FIREWD_OUTPUT_ACCESS', 'FIREWD_FORWARD_ACCESS', 'FIREWD_DNAT_ACCESS', 'FIREWD_SNAT_ACCESS', 'FIREWD_MASQUERADE_ACCESS',
  'FLUSH_IPFW_AT_INIT', 'FLUSH_IPFW_AT_EXIT', 'IPFW_START_RULE_NUM', 'IPFW_MAX_RULES', 'IPFW_ACTIVE_SET_NUM', 'IPFW_EXPIRE_SET_NUM', 'IPFW_EXPIRE_PURGE_INTERVAL', 'IPFW_ADD_CHECK_STATE',
  'PF_ANCHOR_NAME', 'PF_EXPIRE_INTERVAL', 'NFQ_INTERFACE', 'NFQ_PORT', 'NFQ_TABLE', 'NFQ_CHAIN', 'NFQ_QUEUE_NUMBER', 'NFQ_LOOP_SLEEP',
  'FWKNOP_RUN_DIR', 'FWKNOP_CONF_DIR', 'FWKNOP_PID_FILE', 'DIGEST_FILE', 'DIGEST_DB_FILE', 'GPG_HOME_DIR', 'GPG_EXE', 'SUDO_EXE', 'FIREWALL_EXE',
  // fwknopd's -a overrides it, as --fwknop-access does here.
  'ACCESS_FILE',
]);

/** Honoured only at fwknopd's default; the reason says why another value cannot be. */
const DEFAULT_ONLY: Readonly<Record<string, { readonly yes: boolean; readonly why: string }>> = {
  ENABLE_SPA_PACKET_AGING: { yes: true, why: 'knockgw always refuses packets older than MAX_SPA_PACKET_AGE' },
  ENABLE_DIGEST_PERSISTENCE: { yes: true, why: 'knockgw always keeps the replay cache' },
  ENABLE_SPA_OVER_HTTP: { yes: false, why: 'SPA over HTTP is not supported; the relay serves HTTP clients' },
  ENABLE_TCP_SERVER: { yes: false, why: 'SPA arrives over UDP only' },
  ENABLE_X_FORWARDED_FOR: { yes: false, why: 'SPA over HTTP is not supported' },
  ENABLE_DESTINATION_RULE: { yes: false, why: 'grants are not limited to a destination address' },
  ENABLE_NFQ_CAPTURE: { yes: false, why: 'knockgw takes SPA packets from its own nftables rule; use UDPSERV_PORT or PCAP_FILTER for the port' },
  ENABLE_IPT_FORWARDING: { yes: false, why: 'NAT/forwarded access is not supported' },
  ENABLE_IPT_LOCAL_NAT: { yes: false, why: 'NAT access is not supported' },
  ENABLE_IPT_SNAT: { yes: false, why: 'NAT access is not supported' },
  ENABLE_IPT_OUTPUT: { yes: false, why: 'knockgw opens inbound access only' },
  ENABLE_FIREWD_FORWARDING: { yes: false, why: 'NAT/forwarded access is not supported' },
  ENABLE_FIREWD_LOCAL_NAT: { yes: false, why: 'NAT access is not supported' },
  ENABLE_FIREWD_SNAT: { yes: false, why: 'NAT access is not supported' },
  ENABLE_FIREWD_OUTPUT: { yes: false, why: 'knockgw opens inbound access only' },
};

const REFUSED: Readonly<Record<string, string>> = {
  PCAP_FILE: 'reading packets from a capture file is fwknopd\'s test mode',
  ACCESS_FOLDER: 'access folders are not read: give one file with --fwknop-access',
  OVERRIDE_CONFIG: 'override files are not read: put the settings in this file',
  CONFIG_FILE: 'a config file cannot name another one',
  AFL_PKT_FILE: 'a fuzzing build setting', FAULT_INJECTION_TAG: 'a fault-injection build setting',
};

export interface FwknopdConf {
  readonly port: number;
  readonly maxPacketAgeMs: number;
  /** PCAP_INTF, when set. */
  readonly interface?: string;
}

export function parseFwknopdConf(text: string, path: string): FwknopdConf {
  const fail = fwknopFail(path);
  const set = new Map<string, FwknopLine>();
  for (const l of fwknopLines(text, fail)) {
    const refused = REFUSED[l.name];
    if (refused) fail(l.line, `${l.name}: ${refused}`);
    const only = DEFAULT_ONLY[l.name];
    if (only && fwknopYes(l.value) !== only.yes) fail(l.line, `${l.name} ${l.value}: ${only.why}; remove the line or set it to ${only.yes ? 'Y' : 'N'}`);
    const known = only || IGNORED.has(l.name) || ['PCAP_FILTER', 'PCAP_INTF', 'ENABLE_UDP_SERVER', 'UDPSERV_PORT', 'MAX_SPA_PACKET_AGE'].includes(l.name);
    if (!known) fail(l.line, `unknown fwknopd.conf directive "${l.name}"${/[a-z]/.test(l.name) ? ' (names are upper-case)' : ''}`);
    // fwknopd would keep the last one; which one the writer meant is a guess.
    const earlier = set.get(l.name);
    if (earlier) fail(l.line, `${l.name} is already set at line ${earlier.line}; keep one`);
    set.set(l.name, l);
  }
  const udp = set.get('ENABLE_UDP_SERVER');
  const port = udp && fwknopYes(udp.value) ? udpPort(set.get('UDPSERV_PORT'), fail) : pcapPort(set.get('PCAP_FILTER'), fail);
  const age = set.get('MAX_SPA_PACKET_AGE');
  if (age && (!/^\d{1,6}$/.test(age.value) || Number(age.value) < 1 || Number(age.value) > MAX_PACKET_AGE_S)) {
    fail(age.line, `MAX_SPA_PACKET_AGE "${age.value}" is not a number of seconds 1-${MAX_PACKET_AGE_S}`);
  }
  const intf = set.get('PCAP_INTF');
  if (intf && !/^[A-Za-z0-9_.:@-]{1,15}$/.test(intf.value)) fail(intf.line, `PCAP_INTF "${intf.value}" is not a network interface name`);
  return {
    port,
    maxPacketAgeMs: (age ? Number(age.value) : FWKNOP_DEFAULTS.maxPacketAgeS) * 1000,
    ...(intf ? { interface: intf.value } : {}),
  };
}

function udpPort(l: FwknopLine | undefined, fail: FwknopFail): number {
  if (!l) return FWKNOP_DEFAULTS.port;
  const n = /^\d{1,5}$/.test(l.value) ? Number(l.value) : 0;
  return n >= 1 && n <= 65535 ? n : fail(l.line, `UDPSERV_PORT "${l.value}" is not a port 1-65535`);
}

// The filters a single-port UDP listener can stand for; a port range (fwknop --rand-port) or
// other hosts' traffic cannot be expressed as one port.
function pcapPort(l: FwknopLine | undefined, fail: FwknopFail): number {
  if (!l) return FWKNOP_DEFAULTS.port;
  const m = /^(?:udp\s+(?:and\s+)?(?:dst\s+)?port\s+(\d{1,5})|(?:dst\s+)?port\s+(\d{1,5})\s+and\s+udp)$/i.exec(l.value.trim());
  const n = Number(m?.[1] ?? m?.[2] ?? 0);
  if (!m || n < 1 || n > 65535) fail(l.line, `PCAP_FILTER "${l.value}" is not one UDP port: knockgw reads SPA on one port, so write e.g. "udp port 62201"`);
  return n;
}

/** Both fwknopd files to the SPA part of the Config; fwknopd's defaults without fwknopd.conf. */
export function compileFwknop(access: { text: string; path: string }, conf?: { text: string; path: string }): SpaConfig {
  const stanzas = parseFwknopAccess(access.text, access.path);
  const c = conf ? parseFwknopdConf(conf.text, conf.path) : { port: FWKNOP_DEFAULTS.port, maxPacketAgeMs: FWKNOP_DEFAULTS.maxPacketAgeS * 1000 };
  return {
    ...c,
    access: stanzas,
    source: { kind: 'fwknop', accessPath: access.path, ...(conf ? { configPath: conf.path } : {}) },
  };
}
