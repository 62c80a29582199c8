// `knockgw enroll` (a one-time link and its QR code for a phone) and `knockgw devices list|revoke`:
// clients of the daemon's control socket, which owns the device registry.
import { renderUnicodeCompact } from 'uqr';
import { controlRequest } from '../services/control-server.ts';
import { kgwError } from '../core/errors.ts';
import type { Device } from '../protocol/devices.ts';
import type { Command } from '../cli.ts';

async function ask(control: string, method: 'GET' | 'POST', url: string, body?: unknown): Promise<unknown> {
  const answer = await controlRequest(control, method, url, body);
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    throw kgwError('KGW_CONTROL', `the daemon answered ${answer.status} with a body that is not JSON`);
  }
  if (answer.status !== 200) {
    const err = typeof parsed === 'object' && parsed !== null && 'error' in parsed ? (parsed.error as { code?: string; message?: string }) : {};
    const code = err.code === 'KGW_DEVICE_UNKNOWN' || err.code === 'KGW_CLI_USAGE' ? err.code : 'KGW_CONTROL';
    const prefix = `${err.code ?? ''}: `;
    const message = err.message?.startsWith(prefix) ? err.message.slice(prefix.length) : (err.message ?? answer.body);
    throw kgwError(code, code === 'KGW_CONTROL' ? `the daemon refused: ${message}` : message);
  }
  return parsed;
}

export async function runDevicesCommand(command: Extract<Command, { cmd: 'enroll' | 'devices' }>): Promise<number> {
  if (command.cmd === 'enroll') {
    const a = (await ask(command.control, 'POST', '/v1/enroll', { door: command.door, name: command.name, ttlMs: command.ttlMs, relay: command.relay })) as { link: string; door: string; expiresAt: number };
    const when = new Date(a.expiresAt).toISOString().replace('.000Z', 'Z');
    if (process.stdout.isTTY) process.stdout.write(`${renderUnicodeCompact(a.link, { border: 2 })}\n`);
    process.stderr.write(`Open this link on the phone (once, before ${when}); it enrolls the phone for door ${a.door}:\n`);
    process.stdout.write(`${a.link}\n`);
    return 0;
  }
  if (command.action === 'revoke') {
    const r = (await ask(command.control, 'POST', '/v1/devices/revoke', { id: command.id })) as { revoked: Device };
    process.stdout.write(`revoked ${r.revoked.id} (${r.revoked.name}, door ${r.revoked.door}): its knocks are refused from now on; grants it opened run to their expiry (knockgw revoke IP closes them now)\n`);
    return 0;
  }
  const { devices } = (await ask(command.control, 'GET', '/v1/devices')) as { devices: Device[] };
  if (command.json) {
    process.stdout.write(`${JSON.stringify(devices, null, 2)}\n`);
    return 0;
  }
  const lines = devices.map((d) => `${d.id.padEnd(20)} ${d.name.padEnd(16)} ${d.door.padEnd(16)} ${d.alg.padEnd(10)} enrolled ${new Date(d.createdAt).toISOString().slice(0, 16)}Z from ${d.enrolledFrom}`);
  process.stdout.write(`${devices.length} enrolled device(s)\n${lines.map((l) => `  ${l}\n`).join('')}`);
  return 0;
}
