// `knockgw install` / `knockgw uninstall` / `knockgw base`: boot integration and rollback.
// install writes two systemd units: knockgw-base (a oneshot before the network comes up, so the
// protected ports are closed at boot before the daemon runs: TC4) and knockgw (the daemon).
// uninstall is the operator's rollback: units gone, every rule knockgw created removed.
import { mkdir, rm, writeFile, access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hostname } from 'node:os';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { createLogger } from '../kit/log.ts';
import { describeError } from '../core/errors.ts';
import { planEngines } from '../core/engines.ts';
import { hostFirewallFor } from '../wiring/firewall.ts';
import { readConfigFiles } from '../wiring/files.ts';
import type { Command, ConfigSource, DaemonOverrides } from '../cli.ts';
import { createIptablesFirewall, createNftablesFirewall } from '../adapters/firewall/index.ts';

const execFileP = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/knockgw.js', import.meta.url));
export const UNIT_DIR = '/etc/systemd/system';
export const UNITS = ['knockgw-base.service', 'knockgw.service'] as const;

function configArgs(source: ConfigSource, overrides: DaemonOverrides): string[] {
  const args: string[] = [];
  if (source.yamlPath) args.push('--config', resolve(source.yamlPath));
  else if (source.knockdPath || !source.fwknopAccessPath) args.push('--knockd-config', resolve(source.knockdPath ?? '/etc/knockd.conf'));
  if (source.fwknopAccessPath) args.push('--fwknop-access', resolve(source.fwknopAccessPath));
  if (source.fwknopConfigPath) args.push('--fwknop-config', resolve(source.fwknopConfigPath));
  if (overrides.firewall) args.push('--firewall', overrides.firewall);
  if (overrides.engine) args.push('--engine', overrides.engine);
  if (overrides.interface) args.push('--interface', overrides.interface);
  if (overrides.ports) args.push('--ports', overrides.ports.map((p) => `${p.port}/${p.proto}`).join(','));
  if (overrides.store) args.push('--store', overrides.store);
  if (overrides.stateFile) args.push('--state', overrides.stateFile);
  if (overrides.nodeId) args.push('--node-id', overrides.nodeId);
  if (overrides.control) args.push('--control', overrides.control);
  return args;
}

const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `"${a.replace(/(["\\$`])/g, '\\$1')}"`);

/**
 * The units, for a launcher: `[node, bin/knockgw.js]` from a checkout or an npm install, or
 * `[/usr/bin/knockgw]` in the Debian package (which builds its units with this same function).
 */
export function renderUnits(launcher: readonly string[], args: readonly string[]): Record<(typeof UNITS)[number], string> {
  const cmd = (sub: string): string => [...launcher, sub, ...args].map(quote).join(' ');
  return {
    'knockgw-base.service': `[Unit]
Description=knockgw base firewall rules (protected ports closed before the network is up)
DefaultDependencies=no
Before=network-pre.target knockgw.service
Wants=network-pre.target
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
# The boot waits for this unit (Before=network-pre.target): it must never wait forever.
TimeoutStartSec=30s
ExecStart=${cmd('base')}

[Install]
WantedBy=sysinit.target
`,
    'knockgw.service': `[Unit]
Description=knockgw port-knocking gateway
Documentation=https://github.com/knockgw/knockgw
Requires=knockgw-base.service
After=knockgw-base.service network-online.target
Wants=network-online.target

[Service]
ExecStart=${cmd('daemon')}
Restart=always
RestartSec=1
StateDirectory=knockgw
# Needs raw capture (tcpdump) and firewall changes; nothing else.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`,
  };
}

async function systemctl(args: string[]): Promise<void> {
  try {
    await execFileP('systemctl', args);
  } catch (err) {
    process.stderr.write(`knockgw: systemctl ${args.join(' ')} failed (${describeError(err)}); do it by hand when systemd runs\n`);
  }
}

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);

/** `knockgw base`: only the base rules (boot), then exit. */
export async function runBase(command: Extract<Command, { cmd: 'base' }>): Promise<number> {
  const config = await loadConfig({ ...command.source, overrides: command.overrides, hostname: hostname() });
  const logger = createLogger({ level: config.log.level, format: config.log.format });
  // The daemon will refuse what these refuse: the boot must not close ports for a config that cannot run.
  const files = await readConfigFiles(config, logger);
  const firewall = hostFirewallFor(config, planEngines(config), logger, files.oneTime?.ports);
  try {
    await firewall.ensureBase(config.protectedPorts);
  } finally {
    // No helper process may outlive a oneshot: a boot would wait on it.
    firewall.close?.();
  }
  return 0;
}

export async function runInstallCommand(command: Extract<Command, { cmd: 'install' | 'uninstall' }>): Promise<number> {
  const root = command.root ?? '/';
  const unitDir = join(root, UNIT_DIR);
  const live = root === '/';
  if (command.cmd === 'install') {
    // Refuse to install a config that does not load: a broken unit would lock nobody out, but
    // would not protect anything either.
    const config = await loadConfig({ ...command.source, overrides: command.overrides, hostname: hostname() });
    await readConfigFiles(config, createLogger({ level: 'warn', format: 'pretty' }));
    const units = renderUnits([process.execPath, BIN], configArgs(command.source, command.overrides));
    await mkdir(unitDir, { recursive: true });
    for (const [name, text] of Object.entries(units)) await writeFile(join(unitDir, name), text, { mode: 0o644 });
    process.stdout.write(`wrote ${UNITS.map((u) => join(unitDir, u)).join(', ')}\n`);
    if (live && (await exists('/run/systemd/system'))) {
      await systemctl(['daemon-reload']);
      await systemctl(['enable', '--now', ...UNITS]);
    } else if (live) {
      process.stdout.write('systemd is not running here: enable the units with `systemctl enable --now knockgw-base knockgw` on the target\n');
    }
    process.stdout.write('rollback at any time: knockgw uninstall\n');
    return 0;
  }
  if (live && (await exists('/run/systemd/system'))) await systemctl(['disable', '--now', ...UNITS]);
  for (const u of UNITS) await rm(join(unitDir, u), { force: true });
  if (live) {
    const logger = createLogger({ level: 'warn', format: 'pretty' });
    // Both backends: whichever one ran, nothing of knockgw stays behind.
    for (const fw of [createNftablesFirewall({ logger }), createIptablesFirewall({ logger })]) {
      await fw.teardown().catch((err: unknown) => process.stderr.write(`knockgw: ${fw.name} teardown: ${describeError(err)}\n`));
    }
  }
  process.stdout.write(`removed the knockgw units${live ? ' and every rule knockgw created' : ` under ${root}`}\n`);
  return 0;
}

