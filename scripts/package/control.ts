// The package's metadata: the control file (its Depends derived from gateway/system-tools.ts, the
// one list of programs knockgw starts), the units (built by the same renderUnits `knockgw install`
// uses) and the Debian changelog.
import { execFileSync } from 'node:child_process';
import { SYSTEM_TOOLS } from '../../gateway/system-tools.ts';
import { renderUnits } from '../../gateway/commands/install.ts';

export const CONFIG_PATH = '/etc/knockgw/knockgw.yaml';
export const RELAY_DEFAULTS = '/etc/default/knockgw-relay';

/** Packages only some setups use, beyond the optional runtime tools: why each is suggested. */
const SUGGESTS: Readonly<Record<string, string>> = {
  'redis-tools': 'redis-cli, to inspect the store an HA setup shares',
  knockd: "Debian's knock client, to knock from this host",
  'fwknop-client': "Debian's SPA client, to send SPA packets from this host",
};

/** Essential packages are always installed: Debian forbids an unversioned Depends on them. */
function essential(pkg: string): boolean {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Essential}', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() === 'yes';
  } catch {
    return false;
  }
}

export interface RuntimeLibs { readonly glibc: string; readonly glibcxx: string }

/** Depends / Recommends / Suggests: what every setup starts, what some setups start, what helps. */
export function relations(libs: RuntimeLibs): { depends: string; recommends: string; suggests: string } {
  const runtime = SYSTEM_TOOLS.filter((t) => t.use === 'runtime');
  const pkgs = (need: string): string[] => [...new Set(runtime.filter((t) => t.needs === need).map((t) => t.pkg))].sort();
  const always = pkgs('always').filter((p) => !essential(p));
  // The default backend first: apt installs nftables unless the host already has iptables.
  const backends = [...pkgs('nftables'), ...pkgs('iptables')];
  const optional = pkgs('optional').filter((p) => !always.includes(p) && !backends.includes(p));
  // init-system-helpers: deb-systemd-helper and deb-systemd-invoke, which the maintainer scripts use.
  const depends = [`libc6 (>= ${libs.glibc})`, `libstdc++6 (>= ${libs.glibcxx})`, 'libgcc-s1', 'init-system-helpers (>= 1.54~)', ...always, backends.join(' | ')];
  return { depends: depends.join(', '), recommends: optional.join(', '), suggests: Object.keys(SUGGESTS).sort().join(', ') };
}

export function controlFile(p: { version: string; arch: string; installedKiB: number; libs: RuntimeLibs }): string {
  const r = relations(p.libs);
  return `Package: knockgw
Version: ${p.version}
Architecture: ${p.arch}
Maintainer: knockgw maintainers <maintainers@knockgw.invalid>
Installed-Size: ${p.installedKiB}
Depends: ${r.depends}
Recommends: ${r.recommends}
Suggests: ${r.suggests}
Section: net
Priority: optional
Homepage: https://github.com/knockgw/knockgw
Description: port-knocking gateway, a drop-in for knockd and fwknopd
 knockgw keeps protected ports (SSH) closed and opens them for one client
 address after a knock sequence, an SPA packet or a knock relayed for a
 client behind NAT. It reads /etc/knockd.conf and fwknopd's files unchanged,
 drives nftables or iptables for IPv4 and IPv6 with expiry held in the
 kernel, shares grants between nodes through Redis and opens AWS security
 groups and GCP firewall rules too.
 .
 The package carries its own Node.js runtime and ships disabled: nothing
 starts until /etc/knockgw/knockgw.yaml has a door.
`;
}

/** The three units under /usr/lib/systemd/system: base rules at boot, the daemon, the relay. */
export function packageUnits(): Record<string, string> {
  const units = renderUnits(['/usr/bin/knockgw'], ['--config', CONFIG_PATH]);
  return {
    ...units,
    'knockgw-relay.service': `[Unit]
Description=knockgw relay (public address and signed knocks for clients behind NAT)
Documentation=man:knockgw(8)
After=network-online.target
Wants=network-online.target

[Service]
EnvironmentFile=${RELAY_DEFAULTS}
ExecStart=/usr/bin/knockgw relay --listen \${KNOCKGW_RELAY_LISTEN} --store \${KNOCKGW_RELAY_STORE} --keys \${KNOCKGW_RELAY_KEYS}
Restart=always
RestartSec=1
# Reads the keys file and talks to Redis; binding a port below 1024 is all it may do beyond that.
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`,
  };
}

export function debianChangelog(version: string, date: Date): string {
  return `knockgw (${version}) unstable; urgency=medium

  * Release ${version}; see /usr/share/doc/knockgw/README.md.

 -- knockgw maintainers <maintainers@knockgw.invalid>  ${date.toUTCString().replace('GMT', '+0000')}
`;
}
