// Builds the cloud firewalls configured under `cloud:` (the SDK adapters, seconds to load: the
// composition root imports this module only when a cloud is configured) and runs them behind the
// cloud lease (cloud-runtime.ts).
import type { Config } from '../config/types.ts';
import { createCloudFirewalls } from './cloud-firewalls.ts';
import { runCloud, type CloudDeps, type CloudRuntime } from './cloud-runtime.ts';

export function startCloud(deps: CloudDeps & { config: Config }): CloudRuntime | undefined {
  const firewalls = createCloudFirewalls(deps.config, deps.logger);
  if (firewalls.length === 0) return undefined;
  return runCloud({ ...deps, firewalls });
}
