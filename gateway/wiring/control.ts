// The control socket of a running gateway: status, revoke, metrics and, with a relay, device
// enrollment. It is the operator's way in (`knockgw status|revoke|enroll|devices`) and the
// daemon's lock, so it is served before the gateway starts.
import { formatPort } from '../core/grant.ts';
import type { Config } from '../config/types.ts';
import type { Clock, Logger } from '../ports.ts';
import { startControlServer } from '../services/control-server.ts';
import { enrollmentHandlers } from '../services/enrollment.ts';
import { startMetricsServer } from '../services/metrics-server.ts';
import type { Assembly } from './index.ts';

export async function serveControl(config: Config, assembly: Assembly, opts: { clock: Clock; logger: Logger }): Promise<{ close(): Promise<void> }> {
  const { gateway, devices, pageUrl } = assembly;
  const { clock, logger } = opts;
  const enrollment = devices
    ? enrollmentHandlers({ devices, doors: config.doors.map((d) => d.name), clock, logger: logger.child({ component: 'devices' }), ...(pageUrl ? { pageUrl } : {}) })
    : undefined;
  const control = await startControlServer(
    config.control,
    {
      status: () => gateway.status(),
      revoke: async (ip) => ({ closed: (await gateway.revoke(ip)).map((g) => ({ ...g, ports: g.ports.map(formatPort) })) }),
      metrics: () => gateway.metrics.render(),
      ...(enrollment ? { devices: enrollment } : {}),
    },
    logger,
  );
  try {
    const tcp = config.metrics ? await startMetricsServer(config.metrics, gateway.metrics, logger.child({ component: 'metrics' })) : undefined;
    return {
      async close() {
        await tcp?.close();
        await control.close();
      },
    };
  } catch (err) {
    await control.close();
    throw err;
  }
}
