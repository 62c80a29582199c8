// Builds the cloud firewalls configured under `cloud:` (each adapter loads its own cloud's SDK;
// the composition root imports this module only when a cloud is configured) and runs them behind the
// cloud lease (cloud-runtime.ts).
import type { Config } from '../config/types.ts';
import { createCloudFirewalls } from './cloud-firewalls.ts';
import { runCloud, type CloudDeps, type CloudRuntime } from './cloud-runtime.ts';

export async function startCloud(deps: CloudDeps & { config: Config }): Promise<CloudRuntime | undefined> {
  const firewalls = await createCloudFirewalls(deps.config, deps.logger);
  if (firewalls.length === 0) return undefined;
  return runCloud({ ...deps, firewalls });
}
