// `knockgw doctor`: everything that would stop the gateway from working, or lock the operator
// out, checked before it is enabled. Exit 0 = no errors (warnings allowed).
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { loadConfig } from '../config/load.ts';
import { describeError } from '../core/errors.ts';
import { parseIp } from '../core/ip.ts';
import { formatPort } from '../core/grant.ts';
import { planEngines } from '../core/engines.ts';
import { exposureInWords, prefixFor } from '../core/scope.ts';
import type { Door } from '../core/types.ts';
import { readConfigFiles } from '../wiring/files.ts';
import { pcapReadsNflog } from '../wiring/firewall.ts';
import { INTAKE_GROUPS } from '../core/nft-intake.ts';
import { createLogger } from '../kit/log.ts';
import { SYSTEM_TOOLS } from '../system-tools.ts';
import { detectConflicts } from '../adapters/firewall/index.ts';
import type { Command } from '../cli.ts';
import { nodeSatisfies, packageInfo } from './package-info.ts';
import { findRivals, rivalsOf, rivalText } from '../kit/rivals.ts';
import type { Config } from '../config/types.ts';

const execFileP = promisify(execFile);
type Level = 'ok' | 'warn' | 'error';
export interface Finding { readonly level: Level; readonly text: string }

async function toolWorks(cmd: string, args: string[]): Promise<boolean> {
  try {
    await execFileP(cmd, args, { timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** SSH_CONNECTION = "client_ip client_port server_ip server_port". */
export function sshSessionFinding(sshConnection: string | undefined, config: Config): Finding | undefined {
  if (!sshConnection) return undefined;
  const [clientText = '', , , serverPort = ''] = sshConnection.trim().split(/\s+/);
  const client = parseIp(clientText);
  const port = Number(serverPort);
  if (!client || !config.protectedPorts.some((p) => p.proto === 'tcp' && p.port === port)) return undefined;
  return {
    level: 'warn',
    text:
      `you are logged in over SSH from ${client.address} to protected port ${port}: this session stays up ` +
      `(established connections are kept), but a NEW connection from ${client.address} will need a knock first. ` +
      'Keep this session open, knock from a second terminal and log in there before closing it; ' +
      '`knockgw uninstall` removes every rule if anything goes wrong.',
  };
}

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function onPath(tool: string, path: string): boolean {
  return [...path.split(':'), ...SBIN].some((dir) => dir !== '' && existsSync(join(dir, tool)));
}

/** The runtime tools of gateway/system-tools.ts this firewall backend needs, found or not. */
export function toolFindings(firewall: Config['firewall'], path: string, found: (tool: string) => boolean = (t) => onPath(t, path)): Finding[] {
  const out: Finding[] = [];
  for (const t of SYSTEM_TOOLS) {
    if (t.use !== 'runtime') continue;
    const required = t.needs === 'always' || t.needs === firewall;
    if (!required && t.needs !== 'optional') continue;
    if (found(t.tool)) out.push({ level: 'ok', text: `${t.tool} found (${t.why})` });
    else out.push({ level: required ? 'error' : 'warn', text: `${t.tool} is missing${required ? '' : ' (optional)'}: ${t.why}; apt-get install ${t.pkg}` });
  }
  return out;
}

/** The Node running knockgw against package.json's engines (the units start this same Node). */
export function nodeFinding(version: string, path: string, range: string = packageInfo().nodeRange): Finding {
  return nodeSatisfies(version, range)
    ? { level: 'ok', text: `Node ${version} (${path}) satisfies engines ${range}` }
    : { level: 'error', text: `Node ${version} (${path}) is below knockgw's engines ${range}: run knockgw with a Node that satisfies it (from a checkout: npx knockgw …, which uses the pinned Node)` };
}

/** Cloud rules outside knockgw that open a protected port to the whole Internet, each with its removal command. */
export async function cloudFindings(config: Config): Promise<Finding[]> {
  // The cloud SDKs take seconds to load: only when a cloud is configured.
  const { checkWorldOpen } = await import('../wiring/cloud-firewalls.ts');
  const { worldOpenText } = await import('../services/cloud-world-open.ts');
  const { findings, failures } = await checkWorldOpen(config, pino({ level: 'silent' }));
  return [
    ...findings.map((f): Finding => ({ level: 'warn', text: `KGW_CLOUD_WORLD_OPEN: ${worldOpenText(f)}` })),
    ...failures.map((f): Finding => ({ level: 'warn', text: `could not inspect the ${f.provider} firewall for world-open rules: ${f.error}` })),
    ...(findings.length === 0 && failures.length === 0 ? [{ level: 'ok' as const, text: 'no cloud firewall rule opens a protected port to 0.0.0.0/0 or ::/0' }] : []),
  ];
}

export async function doctorFindings(command: Extract<Command, { cmd: 'doctor' }>): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (level: Level, text: string): void => void findings.push({ level, text });

  findings.push(nodeFinding(process.version, process.execPath));
  if (process.getuid?.() === 0) add('ok', 'running as root');
  else add('error', 'not root: the daemon needs CAP_NET_ADMIN and CAP_NET_RAW (run it as root / through the systemd unit)');

  let config: Config;
  try {
    config = await loadConfig({ ...command.source, overrides: command.overrides, hostname: hostname() });
    add('ok', `config ${config.source.path} loads: ${config.sequences.length} sequence(s), protected ${config.protectedPorts.map(formatPort).join(',')}`);
    for (const notice of config.notices) add('warn', notice);
  } catch (err) {
    add('error', describeError(err));
    return findings;
  }
  for (const r of await findRivals(rivalsOf(config))) add('error', `KGW_RIVAL_RUNNING: ${rivalText(r)}`);

  try {
    const files = await readConfigFiles(config, createLogger({ level: 'error', format: 'json' }));
    if (files.oneTime) add('ok', `one_time_sequences: ${[...files.oneTime.entries.values()].reduce((n, e) => n + e.length, 0)} unused sequence(s)`);
    if (files.relayKeys) add('ok', `relay keys: ${files.relayKeys.size} client(s)`);
  } catch (err) {
    add('error', describeError(err));
  }
  for (const f of toolFindings(config.firewall, process.env.PATH ?? '')) findings.push(f);
  for (const iface of config.interfaces) {
    if (await toolWorks('ip', ['link', 'show', 'dev', iface])) add('ok', `interface ${iface} exists`);
    else add('error', `interface ${iface} does not exist here (set "interface:" / Interface= or --interface)`);
  }

  // What one grant of each door exposes, in words: a carrier pool or a /64 is a choice to see.
  for (const d of config.doors) add('ok', doorExposure(d));
  try {
    const engines = planEngines(config);
    for (const [seq, engine] of Object.entries(engines.describe)) add('ok', `sequence ${seq} runs on the ${engine} engine`);
    if (engines.pcap.length > 0) findings.push(pcapIntakeFinding(config));
  } catch (err) {
    add('error', describeError(err));
  }
  if (config.spa) {
    const spa = config.spa;
    add('ok', `SPA: ${spa.access.length} stanza(s) on ${spa.port}/udp, a socket of the daemon behind knockgw's own ${config.firewall} rule (shape checks, rate limit per source and in total, untracked; the port never answers)`);
    if (config.firewall !== 'none') {
      // The socket sees only what every firewall on the host lets in.
      const hidden = await detectConflicts([{ port: spa.port, proto: 'udp' }]).catch(() => []);
      for (const c of hidden) add('warn', `SPA packets never reach the daemon's socket: ${c.explanation}`);
    }
  }

  if (config.firewall !== 'none') {
    try {
      const conflicts = await detectConflicts(config.protectedPorts);
      for (const c of conflicts) add('warn', c.explanation);
      if (conflicts.length === 0) add('ok', 'no foreign firewall rule overrides knockgw on the protected ports');
    } catch (err) {
      add('warn', `could not inspect the existing firewall: ${describeError(err)}`);
    }
  }

  if (config.cloud.aws || config.cloud.gcp) findings.push(...(await cloudFindings(config)));
  const page = knockPageFinding(config);
  if (page) findings.push(page);

  const ssh = sshSessionFinding(process.env.SSH_CONNECTION, config);
  if (ssh) findings.push(ssh);
  return findings;
}

/** The knock page needs a secure context (WebCrypto): say whether phones will get one. */
/**
 * Where the pcap engine's knocks come from, and on a backend without the kernel intake what that
 * costs (bench/RESULTS.md, same lab, one run: knock → open and an 18k pps spoofed SYN flood).
 */
export function pcapIntakeFinding(config: Config): Finding {
  if (pcapReadsNflog(config)) return { level: 'ok', text: `the pcap engine reads knocks from knockgw's nftables intake (NFLOG group ${INTAKE_GROUPS.pcap}): rate-limited per source, first knocks held in the kernel` };
  return {
    level: 'warn',
    text: `the pcap engine reads knocks with tcpdump on ${config.interfaces.join(',')}: the ${config.firewall} backend has no kernel intake for knocks, so every packet to a knock port, a spoofed flood too, is copied to the daemon and parsed there. Measured on a 2-core VM: knock → open p50 7.5 ms (3.0 ms with --firewall nftables), and an 18k packets/s spoofed SYN flood on a knock port costs 66% of a core and +12 MB (4% and +0 MB with nftables), legit p99 24 ms (9 ms). --firewall nftables has the intake`,
  };
}

export function knockPageFinding(config: Config): Finding | undefined {
  const relay = config.relay;
  if (!relay?.listen) return undefined;
  const urls = [relay.publicUrls?.v4, relay.publicUrls?.v6].filter((u): u is string => u !== undefined);
  const families = `${relay.publicUrls?.v4 ? 'IPv4' : ''}${relay.publicUrls?.v4 && relay.publicUrls.v6 ? ' and ' : ''}${relay.publicUrls?.v6 ? 'IPv6' : ''}`;
  if (urls.length > 0 && urls.every((u) => u.startsWith('https://'))) {
    return { level: 'ok', text: `knock page: phones knock over ${families} through ${urls.join(', ')}${relay.tls ? '' : ' (HTTPS must end at a proxy in front: relay.tls is not set)'}` };
  }
  if (relay.tls && urls.length === 0) return { level: 'warn', text: `knock page: no relay.publicUrls, so phones knock over one family only (the one their link's address has); give an A-only and an AAAA-only name` };
  return { level: 'warn', text: 'knock page: phones need HTTPS (WebCrypto works only in a secure context): set relay.tls or put HTTPS in front, and https:// relay.publicUrls' };
}

export async function runDoctor(command: Extract<Command, { cmd: 'doctor' }>): Promise<number> {
  const findings = await doctorFindings(command);
  const mark: Record<Level, string> = { ok: '  ok  ', warn: ' WARN ', error: 'ERROR ' };
  for (const f of findings) process.stdout.write(`[${mark[f.level]}] ${f.text}\n`);
  return findings.some((f) => f.level === 'error') ? 1 : 0;
}

/** "door phone: a knock opens one address on IPv4; on IPv6 one address (a relay or phone knock: one IPv6 subnet …)". */
export function doorExposure(d: Door): string {
  const v4 = exposureInWords(4, prefixFor(d.scope, 4, 'knock'));
  const v6k = exposureInWords(6, prefixFor(d.scope, 6, 'knock'));
  const v6r = exposureInWords(6, prefixFor(d.scope, 6, 'relay'));
  return `door ${d.name}: a grant opens ${v4} on IPv4; on IPv6 ${v6k}${v6r === v6k ? '' : ` for a sequence or SPA knock, ${v6r} for a relay or phone knock`}`;
}
