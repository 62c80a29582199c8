// `knockgw doctor`: everything that would stop the gateway from working, or lock the operator
// out, checked before it is enabled. Exit 0 = no errors (warnings allowed).
import { hostname } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { describeError } from '../errors.ts';
import { parseIp } from '../core/ip.ts';
import { formatPort } from '../core/grant.ts';
import { planEngines } from '../daemon.ts';
import { detectConflicts } from '../adapters/firewall-conflicts.ts';
import type { Command } from '../cli.ts';
import type { Config } from '../config/types.ts';

const execFileP = promisify(execFile);
type Level = 'ok' | 'warn' | 'error';
interface Finding { readonly level: Level; readonly text: string }

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

export async function doctorFindings(command: Extract<Command, { cmd: 'doctor' }>): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (level: Level, text: string): void => void findings.push({ level, text });

  if (process.getuid?.() === 0) add('ok', 'running as root');
  else add('error', 'not root: the daemon needs CAP_NET_ADMIN and CAP_NET_RAW (run it as root / through the systemd unit)');

  let config: Config;
  try {
    config = await loadConfig({ ...command.source, overrides: command.overrides, hostname: hostname() });
    add('ok', `config ${config.source.path} loads: ${config.sequences.length} sequence(s), protected ${config.protectedPorts.map(formatPort).join(',')}`);
  } catch (err) {
    add('error', describeError(err));
    return findings;
  }

  const tools: [string, string[], boolean][] = [
    ['tcpdump', ['--version'], true],
    ['nft', ['--version'], config.firewall === 'nftables'],
    ['iptables', ['--version'], config.firewall === 'iptables'],
    ['ip6tables', ['--version'], config.firewall === 'iptables'],
    ['ipset', ['--version'], false],
  ];
  for (const [tool, args, required] of tools) {
    if (await toolWorks(tool, args)) add('ok', `${tool} found`);
    else add(required ? 'error' : 'warn', `${tool} is missing${required ? '' : ' (optional)'}: apt-get install ${tool === 'nft' ? 'nftables' : tool === 'ip6tables' ? 'iptables' : tool}`);
  }
  for (const iface of config.interfaces) {
    if (await toolWorks('ip', ['link', 'show', 'dev', iface])) add('ok', `interface ${iface} exists`);
    else add('error', `interface ${iface} does not exist here (set "interface:" / Interface= or --interface)`);
  }

  try {
    for (const [seq, engine] of Object.entries(planEngines(config).describe)) add('ok', `sequence ${seq} runs on the ${engine} engine`);
  } catch (err) {
    add('error', describeError(err));
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

  const ssh = sshSessionFinding(process.env.SSH_CONNECTION, config);
  if (ssh) findings.push(ssh);
  return findings;
}

export async function runDoctor(command: Extract<Command, { cmd: 'doctor' }>): Promise<number> {
  const findings = await doctorFindings(command);
  const mark: Record<Level, string> = { ok: '  ok  ', warn: ' WARN ', error: 'ERROR ' };
  for (const f of findings) process.stdout.write(`[${mark[f.level]}] ${f.text}\n`);
  return findings.some((f) => f.level === 'error') ? 1 : 0;
}
