// The control socket of a running gateway: status, revoke, metrics and, with a relay, device
// enrollment. It is the operator's way in (`knockgw status|revoke|enroll|devices`) and the
// daemon's lock, so it is served before the gateway starts.
import { formatPort } from '../core/grant.ts';
import type { Config } from '../config/types.ts';
import type { Clock, Logger } from '../ports.ts';
import { startControlServer } from '../services/control-server.ts';
import { enrollmentHandlers, type EnrollmentHandlers } from '../services/enrollment.ts';
import { startMetricsServer } from '../services/metrics-server.ts';
import type { Assembly } from './index.ts';

/**
 * `current` is read at every request: a reload (SIGHUP) swaps the gateway behind the socket
 * while the socket, and the lock it is, stay.
 */
export async function serveControl(current: () => { config: Config; assembly: Assembly }, opts: { clock: Clock; logger: Logger }): Promise<{ close(): Promise<void> }> {
  const { clock, logger } = opts;
  const enrollment = new WeakMap<Assembly, EnrollmentHandlers | undefined>();
  const enrollmentOf = (config: Config, assembly: Assembly): EnrollmentHandlers | undefined => {
    if (!enrollment.has(assembly)) {
      const { devices, pageUrl } = assembly;
      enrollment.set(assembly, devices
        ? enrollmentHandlers({ devices, doors: config.doors.map((d) => d.name), clock, logger: logger.child({ component: 'devices' }), ...(pageUrl ? { pageUrl } : {}) })
        : undefined);
    }
    return enrollment.get(assembly);
  };
  const gateway = () => current().assembly.gateway;
  const control = await startControlServer(
    // The path the daemon started with: a reload does not move its socket (and lock).
    current().config.control,
    {
      status: () => gateway().status(),
      revoke: async (ip) => ({ closed: (await gateway().revoke(ip)).map((g) => ({ ...g, ports: g.ports.map(formatPort) })) }),
      metrics: () => gateway().metrics.render(),
      activity: () => gateway().activity(),
      get devices() {
        const { config, assembly } = current();
        return enrollmentOf(config, assembly);
      },
    },
    logger,
  );
  try {
    // Bound once, like the control socket: a reload serves the new gateway's metrics on the same port.
    const listen = current().config.metrics;
    const metrics = { render: () => gateway().metrics.render(), get contentType() { return gateway().metrics.contentType; } };
    const tcp = listen ? await startMetricsServer(listen, metrics, logger.child({ component: 'metrics' })) : undefined;
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
