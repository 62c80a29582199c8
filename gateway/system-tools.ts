// Every program knockgw, its tests, its bench and its demo start, with the Debian package that
// provides it. One list: scripts/setup.sh and .ci/run install the packages named here (they read
// this file with grep, before any Node exists, so keep one entry per line in this exact shape),
// `knockgw doctor` checks the runtime entries, and test/unit/system-tools.test.ts fails when the
// code starts a program that is not listed.
//
// use: runtime = the daemon or a CLI command needs it (doctor checks it);
//      test / bench / demo = only the test suite, `npm run bench` or the demo start it.
// needs: for runtime tools, which configuration needs it ('always', a firewall backend, or
//      'optional' when knockgw works without it and says what is lost).

export type ToolUse = 'runtime' | 'test' | 'bench' | 'demo';
export type ToolNeed = 'always' | 'nftables' | 'iptables' | 'optional';

export interface SystemTool {
  readonly tool: string;
  readonly pkg: string;
  readonly use: ToolUse;
  readonly needs?: ToolNeed;
  readonly why: string;
}

export const SYSTEM_TOOLS: readonly SystemTool[] = [
  { tool: 'nft', pkg: 'nftables', use: 'runtime', needs: 'nftables', why: 'the nftables backend and the kernel knock engine' },
  { tool: 'iptables', pkg: 'iptables', use: 'runtime', needs: 'iptables', why: 'the iptables backend (IPv4)' },
  { tool: 'ip6tables', pkg: 'iptables', use: 'runtime', needs: 'iptables', why: 'the iptables backend (IPv6)' },
  { tool: 'iptables-restore', pkg: 'iptables', use: 'runtime', needs: 'iptables', why: 'atomic iptables batches' },
  { tool: 'ip6tables-restore', pkg: 'iptables', use: 'runtime', needs: 'iptables', why: 'atomic ip6tables batches' },
  { tool: 'iptables-save', pkg: 'iptables', use: 'runtime', needs: 'optional', why: 'finding foreign DROP rules that override knockgw' },
  { tool: 'ip6tables-save', pkg: 'iptables', use: 'runtime', needs: 'optional', why: 'finding foreign DROP rules that override knockgw (IPv6)' },
  { tool: 'iptables-legacy-save', pkg: 'iptables', use: 'runtime', needs: 'optional', why: 'finding foreign DROP rules in the legacy iptables tables' },
  { tool: 'ip6tables-legacy-save', pkg: 'iptables', use: 'runtime', needs: 'optional', why: 'finding foreign DROP rules in the legacy ip6tables tables' },
  { tool: 'ipset', pkg: 'ipset', use: 'runtime', needs: 'optional', why: 'kernel expiry of grants on the iptables backend' },
  { tool: 'tcpdump', pkg: 'tcpdump', use: 'runtime', needs: 'always', why: 'packet capture for the pcap engine and the NFLOG reader' },
  { tool: 'setpriv', pkg: 'util-linux', use: 'runtime', needs: 'always', why: 'ties tcpdump to the daemon (parent-death signal)' },
  { tool: 'ip', pkg: 'iproute2', use: 'runtime', needs: 'always', why: 'interface checks; network namespaces in tests' },
  { tool: 'systemctl', pkg: 'systemd', use: 'runtime', needs: 'optional', why: '`knockgw install` enables the units' },
  { tool: 'redis-server', pkg: 'redis-server', use: 'test', why: 'the real Redis behind the HA tests' },
  { tool: 'redis-sentinel', pkg: 'redis-sentinel', use: 'test', why: 'the three sentinels of the chaos harness (failover)' },
  { tool: 'redis-cli', pkg: 'redis-tools', use: 'test', why: 'asks the chaos harness sentinels which server is primary' },
  { tool: 'tc', pkg: 'iproute2', use: 'test', why: 'netem loss and delay on the store link in the chaos harness' },
  { tool: 'faketime', pkg: 'faketime', use: 'test', why: 'runs one HA node 90 s ahead or behind (libfaketime) in the clock-skew test' },
  { tool: 'knock', pkg: 'knockd', use: 'test', why: "Debian's knock client in the compatibility tests" },
  { tool: 'knockd', pkg: 'knockd', use: 'bench', why: 'the real knockd the bench compares with' },
  { tool: 'fwknop', pkg: 'fwknop-client', use: 'test', why: "Debian's fwknop client in the SPA compatibility tests" },
  { tool: 'fwknopd', pkg: 'fwknop-server', use: 'bench', why: 'the real fwknopd the bench compares SPA with' },
  { tool: 'hping3', pkg: 'hping3', use: 'test', why: 'spoofed-source floods inside the lab namespaces' },
  { tool: 'ping', pkg: 'iputils-ping', use: 'test', why: 'path checks through the NAT lab' },
  { tool: 'promtool', pkg: 'prometheus', use: 'test', why: 'checks the metrics exposition, the alert rules and their unit tests' },
  { tool: 'timeout', pkg: 'coreutils', use: 'test', why: 'bounds every flood' },
  { tool: 'sysctl', pkg: 'procps', use: 'test', why: 'turns on forwarding in the NAT lab' },
  { tool: 'git', pkg: 'git', use: 'test', why: 'reads .gcloudignore with the gitignore rules gcloud uses' },
  { tool: 'chromium', pkg: 'chromium', use: 'test', why: 'the knock page end to end in a real browser (driven by playwright-core)' },
  { tool: 'ssh', pkg: 'openssh-client', use: 'test', why: 'a real ssh client runs knockgw ssh as its ProxyCommand' },
  { tool: 'sh', pkg: 'dash', use: 'test', why: 'knockd.conf commands the command tests run; `sh -n` on every shell script' },
  { tool: 'bash', pkg: 'bash', use: 'test', why: 'checks and runs the generated bash completion; `bash -n` on bash scripts' },
  { tool: 'shellcheck', pkg: 'shellcheck', use: 'test', why: 'lints every shell script the project ships or writes' },
  { tool: 'zsh', pkg: 'zsh', use: 'test', why: 'parses and loads the generated zsh completion' },
  { tool: 'echo', pkg: 'coreutils', use: 'test', why: 'knockd.conf commands the command tests run' },
  { tool: 'touch', pkg: 'coreutils', use: 'test', why: 'knockd.conf commands the command tests run' },
  { tool: 'mv', pkg: 'coreutils', use: 'test', why: 'moves the log file away as logrotate does (SIGHUP test)' },
  { tool: 'cat', pkg: 'coreutils', use: 'bench', why: 'reads interface counters inside a namespace' },
  { tool: 'nice', pkg: 'coreutils', use: 'bench', why: "raises the latency probe's priority" },
  { tool: 'taskset', pkg: 'util-linux', use: 'bench', why: 'pins the relay bench to one core' },
  { tool: 'dpkg-query', pkg: 'dpkg', use: 'bench', why: "reports knockd's version" },
  { tool: 'dpkg-deb', pkg: 'dpkg', use: 'test', why: '`npm run package:deb` builds the .deb; the package test inspects it' },
  { tool: 'dpkg', pkg: 'dpkg', use: 'test', why: 'the package test installs, upgrades and purges the .deb in a throwaway root' },
  { tool: 'strip', pkg: 'binutils', use: 'test', why: "`npm run package:deb` strips the runtime's debug info" },
  { tool: 'objdump', pkg: 'binutils', use: 'test', why: "`npm run package:deb` reads the runtime's glibc/libstdc++ needs for Depends" },
  { tool: 'lintian', pkg: 'lintian', use: 'test', why: 'the package test checks the .deb against Debian policy' },
  { tool: 'systemd-analyze', pkg: 'systemd', use: 'test', why: 'the package test verifies the units' },
  { tool: 'unshare', pkg: 'util-linux', use: 'test', why: 'a private mount namespace for the throwaway root of the package test' },
  { tool: 'mount', pkg: 'mount', use: 'test', why: 'the overlay over / that the package test installs into' },
  { tool: 'chroot', pkg: 'coreutils', use: 'test', why: 'runs dpkg and the packaged knockgw inside the throwaway root' },
  { tool: 'nsenter', pkg: 'util-linux', use: 'test', why: "enters the throwaway root's mount namespace" },
  { tool: 'sha256sum', pkg: 'coreutils', use: 'test', why: 'the package test checks that two builds give the same bytes' },
  { tool: 'env', pkg: 'coreutils', use: 'test', why: 'runs npm and the globally installed knockgw with a chosen PATH and directory' },
  { tool: 'tar', pkg: 'tar', use: 'test', why: 'lists the npm pack tarball' },
  { tool: 'man', pkg: 'man-db', use: 'test', why: 'the package test finds the installed man pages' },
  { tool: 'groff', pkg: 'groff-base', use: 'test', why: 'the man pages are rendered with warnings on in the unit tests' },
];

/** The packages to install for these uses (sorted, unique). */
export function packagesFor(uses: readonly ToolUse[]): string[] {
  return [...new Set(SYSTEM_TOOLS.filter((t) => uses.includes(t.use)).map((t) => t.pkg))].sort();
}
