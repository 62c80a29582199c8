// The control socket of a running gateway: status, revoke, metrics and, with a relay, device
// enrollment. It is the operator's way in (`knockgw status|revoke|enroll|devices`) and the
// daemon's lock, so it is served before the gateway starts.
import { formatPort } from '../core/grant.ts';
import type { Config } from '../config/types.ts';
import type { Clock, Logger } from '../ports.ts';
import { startControlServer } from '../services/control-server.ts';
import { enrollmentHandlers } from '../services/enrollment.ts';
import type { Assembly } from './index.ts';

export function serveControl(config: Config, assembly: Assembly, opts: { clock: Clock; logger: Logger }): Promise<{ close(): Promise<void> }> {
  const { gateway, devices, pageUrl } = assembly;
  const { clock, logger } = opts;
  const enrollment = devices
    ? enrollmentHandlers({ devices, doors: config.doors.map((d) => d.name), clock, logger: logger.child({ component: 'devices' }), ...(pageUrl ? { pageUrl } : {}) })
    : undefined;
  return startControlServer(
    config.control,
    {
      status: () => gateway.status(),
      revoke: async (ip) => ({ closed: (await gateway.revoke(ip)).map((g) => ({ ...g, ports: g.ports.map(formatPort) })) }),
      metrics: () => gateway.metrics.render(),
      activity: () => gateway.activity(),
      ...(enrollment ? { devices: enrollment } : {}),
    },
    logger,
  );
}
