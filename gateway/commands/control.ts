// `knockgw status` and `knockgw revoke IP`: clients of the daemon's control socket.
import { controlRequest } from '../services/control-server.ts';
import { ERROR_CODES, kgwError, type ErrorCode } from '../core/errors.ts';
import type { Command } from '../cli.ts';

interface StatusGrant { ip: string; covers?: string; exposure?: string; door: string; ports: string[]; source: string; expiresAt: string | null; nodeId: string; cloudRules?: { provider: string; rule: string }[] | null }
interface StatusNode { nodeId: string; self: boolean; version: string; store: string; startedAt: string | null; silentFor: number; silent: boolean }
interface StatusCloud { name: string; state: string; since: string | null; lastListedAt: string | null; pendingWrites: number; worldOpenRules: number; lastError: { op: string; code: string; at: string } | null }
interface StatusBody {
  nodeId: string; firewall: string; store: { kind: string; state: string; since: string | null }; grants: StatusGrant[];
  /** Absent when an older daemon answers (an upgrade in progress). */
  version?: string; uptime?: number; leader?: boolean | null; clouds?: StatusCloud[]; doors?: { name: string; engine: string; reason?: string }[]; fleet?: StatusNode[] | null;
}

function fleetLines(status: StatusBody): string[] {
  if (status.fleet === undefined || status.store.kind === 'memory') return [];
  if (status.fleet === null) return ['fleet: unknown (the store cannot be read now)'];
  return [`fleet: ${status.fleet.length} node(s)`, ...status.fleet.map((n) => {
    const heard = n.self ? 'this node' : n.silent ? `SILENT for ${n.silentFor} s (last said: store ${n.store})` : `heard ${n.silentFor} s ago`;
    return `  node ${n.nodeId}: ${n.version}, store ${n.store}, ${heard}${n.startedAt ? `, up since ${n.startedAt}` : ''}`;
  })];
}

function cloudOf(g: StatusGrant, clouds: number): string {
  if (clouds === 0 || g.cloudRules === undefined) return '';
  if (g.cloudRules === null) return '; cloud rules: held by the leader node';
  return `; cloud: ${g.cloudRules.length ? g.cloudRules.map((r) => `${r.provider} ${r.rule}`).join(', ') : 'no rule yet'}`;
}

function cloudLine(c: StatusCloud): string {
  const state = c.state === 'failing' && c.lastError ? `failing since ${c.since ?? '?'} (${c.lastError.op}: ${c.lastError.code})` : c.state === 'follower' ? 'left to the leader' : c.state;
  const extra = [c.lastListedAt ? `listed ${c.lastListedAt}` : 'not listed yet', ...(c.pendingWrites ? [`${c.pendingWrites} write(s) pending`] : []), ...(c.worldOpenRules ? [`${c.worldOpenRules} WORLD-OPEN rule(s)`] : [])];
  return `  cloud ${c.name}: ${state}; ${extra.join(', ')}`;
}

function parseAnswer(answer: { status: number; body: string }): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    throw kgwError('KGW_CONTROL', `the daemon answered ${answer.status} with a body that is not JSON`);
  }
  if (answer.status !== 200) {
    // The daemon's own coded error, passed on as it is: its code decides the exit status.
    const error = typeof parsed === 'object' && parsed !== null && 'error' in parsed ? (parsed.error as { code?: unknown; message?: unknown }) : undefined;
    const code = typeof error?.code === 'string' && error.code in ERROR_CODES ? (error.code as ErrorCode) : 'KGW_CONTROL';
    const message = typeof error?.message === 'string' ? error.message.replace(/^KGW_\w+: /, '') : answer.body.trim();
    throw kgwError(code, `the daemon refused: ${message}`);
  }
  return parsed;
}

export async function runControlCommand(command: Extract<Command, { cmd: 'status' | 'revoke' }>): Promise<number> {
  if (command.cmd === 'revoke') {
    const closed = parseAnswer(await controlRequest(command.control, 'POST', '/v1/revoke', { ip: command.ip })) as { closed: StatusGrant[] };
    process.stdout.write(closed.closed.length ? closed.closed.map((g) => `closed ${g.ports.join(',')} for ${g.covers ?? g.ip} (${g.door})\n`).join('') : `no grant for ${command.ip}\n`);
    return 0;
  }
  const status = parseAnswer(await controlRequest(command.control, 'GET', '/v1/status')) as StatusBody;
  if (command.json) {
    process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `knockgw ${status.version ?? '?'} · node ${status.nodeId} · up ${status.uptime ?? '?'} s · firewall ${status.firewall} · store ${status.store.kind} ${status.store.state}`,
    ...(status.store.state === 'cut-off' ? [`cut off from the store since ${status.store.since ?? '?'}: grants learned from it are closed`] : status.store.state === 'degraded' ? [`store degraded: last heard ${status.store.since ?? '?'}`] : []),
    ...(status.leader === null || status.leader === undefined ? [] : [status.leader ? 'this node leads the cloud sync' : 'another node leads the cloud sync']),
    ...(status.clouds ?? []).map(cloudLine),
    ...(status.doors ?? []).map((d) => `  door ${d.name}: ${d.engine} engine${d.reason ? ` (${d.reason})` : ''}`),
    ...fleetLines(status),
    `${status.grants.length} live grant(s)`,
    ...status.grants.map((g) => `  ${(g.covers ?? g.ip).padEnd(43)} ${g.door.padEnd(16)} ${g.ports.join(',').padEnd(12)} ${g.expiresAt ?? 'until closed'} (${g.source} via ${g.nodeId}${g.exposure && g.exposure !== 'one address' ? `; ${g.exposure}` : ''}${cloudOf(g, status.clouds?.length ?? 0)})`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
