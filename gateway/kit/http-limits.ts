// Bounds for the HTTP servers knockgw runs (the Node relay, the control socket): headers and
// whole requests must arrive in time (slowloris), and one peer may hold only so many connections,
// enforced at accept, before any parsing.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ServerLimits {
  /** Headers must be complete this soon after the connection opens (slowloris). */
  readonly headersTimeoutMs: number;
  /** The whole request, body included. */
  readonly requestTimeoutMs: number;
  /** Open connections one peer address may hold; 0 = no cap (behind a proxy every peer is the proxy). */
  readonly connectionsPerIp: number;
}

export const DEFAULT_LIMITS: ServerLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 15_000, connectionsPerIp: 32 };

/** Applies the limits to a Node HTTP server: timeouts, and a per-peer connection cap enforced at accept. */
export function limitServer(server: Server, limits: ServerLimits, onRefused?: (ip: string) => void): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  if (limits.connectionsPerIp <= 0) return;
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? '';
    const n = (open.get(ip) ?? 0) + 1;
    if (n > limits.connectionsPerIp) {
      onRefused?.(ip);
      socket.destroy();
      return;
    }
    open.set(ip, n);
    socket.once('close', () => {
      const left = (open.get(ip) ?? 1) - 1;
      if (left <= 0) open.delete(ip);
      else open.set(ip, left);
    });
  });
}

