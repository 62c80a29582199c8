// `metrics:` — a Prometheus listener beside the control socket. Loopback by default: the
// exposition names doors, SPA stanzas and the node, and says when the gateway is under a flood
// or cut off from its store, which is reconnaissance for whoever can read it; a wider address is
// the operator's explicit choice (`allowRemote: true`, e.g. behind a firewall for a Prometheus
// on another host).
import { isIP } from 'node:net';
import { z } from 'zod';

export interface MetricsListen { readonly host: string; readonly port: number; readonly allowRemote: boolean }

/** `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464` → host and port; undefined when malformed. */
export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!m || host === undefined || port > 65535 || (m[1] !== undefined && isIP(host) !== 6)) return undefined;
  return { host, port };
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return isIP(host) === 6 && /^(?:0{0,4}:){2,7}0{0,3}1$|^::1$/i.test(host);
}

export const metricsSchema = z
  .strictObject({
    listen: z.string().refine((s) => parseListen(s) !== undefined, 'must be ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464'),
    allowRemote: z.boolean().optional(),
  })
  .superRefine((m, ctx) => {
    const at = parseListen(m.listen);
    if (at && !isLoopbackHost(at.host) && m.allowRemote !== true) {
      ctx.addIssue({
        code: 'custom', path: ['listen'],
        message: `${m.listen} is not a loopback address: anyone who reaches it reads which doors exist, how many grants are open and when the gateway is flooded or cut off from its store. Listen on 127.0.0.1 (scrape through ssh -L or a local agent), or set metrics.allowRemote: true and firewall the port`,
      });
    }
  });

export function metricsListen(y: z.output<typeof metricsSchema>): MetricsListen {
  const at = parseListen(y.listen) ?? { host: '127.0.0.1', port: 9464 };
  return { ...at, allowRemote: y.allowRemote === true };
}
