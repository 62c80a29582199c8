// What `knockgw enroll` and `knockgw devices` ask the daemon for, over its control socket: a
// one-time enrollment link for a door, the list of enrolled devices, a revocation.
import { z } from 'zod';
import { kgwError } from '../core/errors.ts';
import { DEFAULT_TOKEN_TTL_MS, MAX_TOKEN_TTL_MS, type Device, type DeviceRegistry } from '../protocol/devices.ts';
import type { Clock, Logger } from '../ports.ts';

export const enrollRequestSchema = z.object({
  door: z.string().min(1).max(128),
  name: z.string().min(1).max(64).optional(),
  ttlMs: z.number().int().positive().optional(),
  relay: z.string().url().optional(),
});
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

export interface EnrollAnswer { readonly link: string; readonly door: string; readonly name?: string; readonly expiresAt: number }

export interface EnrollmentHandlers {
  enroll(body: unknown): Promise<EnrollAnswer>;
  list(): Promise<{ devices: Device[] }>;
  revoke(id: string): Promise<{ revoked: Device }>;
}

export function enrollmentHandlers(opts: { devices: DeviceRegistry; doors: readonly string[]; pageUrl?: string; clock: Clock; logger: Logger }): EnrollmentHandlers {
  const { devices, logger } = opts;
  return {
    async enroll(body) {
      const parsed = enrollRequestSchema.safeParse(body);
      if (!parsed.success) throw kgwError('KGW_CLI_USAGE', `invalid enrollment request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      const req = parsed.data;
      if (!opts.doors.includes(req.door)) throw kgwError('KGW_CLI_USAGE', `the gateway has no door "${req.door}" (doors: ${opts.doors.join(', ') || 'none'})`, { door: req.door });
      const ttlMs = req.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
      if (ttlMs > MAX_TOKEN_TTL_MS) throw kgwError('KGW_CLI_USAGE', `--expires is at most 24h (an enrollment link is a password until used)`, { ttlMs });
      const base = req.relay ?? opts.pageUrl;
      if (!base) throw kgwError('KGW_CLI_USAGE', 'no relay URL to put in the link: pass --relay URL, or set relay.publicUrls or relay.listen in the config');
      const issued = await devices.issue({ door: req.door, ttlMs, ...(req.name === undefined ? {} : { name: req.name }) }, opts.clock.now());
      logger.info({ event: 'device.link_issued', door: req.door, name: req.name, expiresAt: new Date(issued.expiresAt).toISOString() }, 'enrollment link issued');
      return { link: `${base.replace(/\/+$/, '')}/#enroll=${issued.token}`, door: req.door, ...(req.name === undefined ? {} : { name: req.name }), expiresAt: issued.expiresAt };
    },
    async list() {
      return { devices: await devices.list() };
    },
    async revoke(id) {
      const device = (await devices.get(id));
      if (!device || !(await devices.revoke(id))) throw kgwError('KGW_DEVICE_UNKNOWN', `no enrolled device "${id}" (knockgw devices list shows them)`, { id });
      logger.info({ event: 'device.revoked', device: id, name: device.name, door: device.door }, 'device revoked: its knocks are refused from now on');
      return { revoked: device };
    },
  };
}
