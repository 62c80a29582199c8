// Rules outside knockgw that open a protected port to 0.0.0.0/0 or ::/0 make knocking pointless:
// the port is open to everyone whatever knockgw does. The cloud sweep reports them (a coded
// warning and a metric, at start-up and in every sweep); `doctor` lists them through
// checkWorldOpen (cloud-firewalls.ts) with the command that removes each.
import type { Logger, WorldOpenRule } from '../ports.ts';
import type { Metrics } from './metrics.ts';

export function worldOpenText(f: WorldOpenRule): string {
  return `${f.provider} rule ${f.rule} (${f.where}) opens ${f.ports.join(', ')} to ${f.source}: ` +
    `anyone can connect there whether they knock or not. Remove it: ${f.removeCommand}`;
}

/** Logs each finding as a KGW_CLOUD_WORLD_OPEN warning and sets the gauge; returns how many. */
export function reportWorldOpen(findings: readonly WorldOpenRule[], logger: Logger, metrics: Metrics | undefined, provider: string): number {
  for (const f of findings) {
    logger.warn({ event: 'cloud.world_open', code: 'KGW_CLOUD_WORLD_OPEN', provider: f.provider, rule: f.rule, where: f.where, source: f.source, ports: f.ports, remove: f.removeCommand }, worldOpenText(f));
  }
  metrics?.set('cloud_world_open_rules', findings.length, { provider });
  return findings.length;
}
