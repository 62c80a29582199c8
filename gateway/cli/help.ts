// The help of every command as data: `knockgw CMD --help`, the short usage line of a usage error,
// the overview, shell completion and the knockgw(8) man page are all rendered from this one
// table, so none of them can drift from another. Pure: no I/O.
import { DEFAULT_CONFIGS } from '../core/config-paths.ts';

export interface OptionHelp {
  /** Long name without the dashes, e.g. "config". */
  readonly long: string;
  /** One-letter alias without the dash, e.g. "c". */
  readonly short?: string;
  /** The argument's placeholder (`FILE`); absent for a flag. */
  readonly arg?: string;
  /** Fixed choices of the argument, for completion and the man page. */
  readonly choices?: readonly string[];
  readonly text: string;
}

export interface CommandHelp {
  readonly name: string;
  /** One line each, without the leading `knockgw `. */
  readonly synopsis: readonly string[];
  readonly summary: string;
  readonly options: readonly OptionHelp[];
  /** Sub-command words (devices list|revoke, completion bash|zsh). */
  readonly words?: readonly string[];
  /** A few lines of prose after the options (man page DESCRIPTION, end of --help). */
  readonly notes?: readonly string[];
}


const control: OptionHelp = { long: 'control', arg: 'SOCKET', text: 'the control socket of the daemon (default /run/knockgw.sock)' };
const json: OptionHelp = { long: 'json', text: 'print JSON instead of text' };
const family: OptionHelp[] = [
  { long: 'ipv4', short: '4', text: 'IPv4 only' },
  { long: 'ipv6', short: '6', text: 'IPv6 only' },
];

const configSource: OptionHelp[] = [
  { long: 'config-file', short: 'c', arg: 'FILE', text: 'knockd -c: a .yaml/.yml file is read as --config, anything else as --knockd-config' },
  { long: 'config', arg: 'FILE.yaml', text: 'the native YAML config' },
  { long: 'knockd-config', arg: 'FILE', text: "an existing knockd.conf, read unchanged" },
  { long: 'fwknop-access', arg: 'FILE', text: "fwknopd's access.conf: SPA doors, alone or next to one of the above" },
  { long: 'fwknop-config', arg: 'FILE', text: "fwknopd's fwknopd.conf (SPA port, packet age); needs --fwknop-access" },
];

const runtime: OptionHelp[] = [
  { long: 'interface', short: 'i', arg: 'IF', text: 'the interface(s) to watch, comma-separated (knockd -i)' },
  { long: 'engine', arg: 'ENGINE', choices: ['auto', 'kernel', 'pcap'], text: 'knock engine: kernel (nftables sets) where a door allows it, else pcap' },
  { long: 'firewall', arg: 'KIND', choices: ['nftables', 'iptables', 'none'], text: 'host firewall backend' },
  { long: 'ports', arg: 'PORTS', text: 'protected ports, e.g. 22,2222/tcp (replaces the config\'s)' },
  { long: 'store', arg: 'URL', text: 'memory, redis://…, rediss://…, redis+sentinel://h:p,h:p/name or a Redis unix socket path' },
  { long: 'node-id', arg: 'ID', text: 'this node\'s name in HA (default: the hostname)' },
  { long: 'max-staleness', arg: 'SECONDS', text: 'HA: the longest a revoke may take to reach every node (default 60)' },
  { long: 'metrics-listen', arg: 'ADDR:PORT', text: 'also serve GET /metrics for Prometheus on this TCP address (loopback unless metrics.allowRemote)' },
  { long: 'state', arg: 'FILE', text: 'the state file of the memory store' },
  { ...control, text: 'the control socket, also the daemon\'s lock (default /run/knockgw.sock)' },
  { long: 'log-format', arg: 'FORMAT', choices: ['json', 'pretty'], text: 'pino JSON lines or knockd-style readable lines' },
];

const discovery = `With no config option, the first of ${DEFAULT_CONFIGS.join(', ')} that exists is read (and the start-up log says which).`;

export const COMMANDS: readonly CommandHelp[] = [
  {
    name: 'daemon',
    synopsis: ['daemon [-c FILE | --config FILE.yaml | --knockd-config FILE] [--fwknop-access FILE [--fwknop-config FILE]] [-i IF] [-D] [-p PIDFILE] [-g LOGFILE] [OPTIONS]'],
    summary: 'run the gateway: watch for knocks, open and close the protected ports',
    options: [
      ...configSource,
      ...runtime,
      { long: 'debug', short: 'D', text: 'knockd -D: log at debug level (every knock step)' },
      { long: 'pidfile', short: 'p', arg: 'FILE', text: 'knockd -p: write the pid here once ready (knockd.conf PidFile)' },
      { long: 'logfile', short: 'g', arg: 'FILE', text: 'knockd -g: also append every log line to this file (knockd.conf LogFile)' },
      { long: 'verbose', short: 'v', text: 'knockd -v: accepted; knockgw logs every open, close and refusal at its default level already' },
      { long: 'daemon', short: 'd', text: 'knockd -d: refused with a usage error; knockgw stays in the foreground and is run by systemd (knockgw install)' },
      { long: 'lookup', short: 'l', text: 'knockd -l: refused; knockgw logs addresses, never names' },
      { long: 'only-ip-v4', short: '4', text: 'knockd -4: refused; knockgw protects IPv4 and IPv6 alike' },
      { long: 'teardown', text: 'on stop, remove every rule knockgw created (default: keep them, grants expire in the kernel)' },
      { long: 'check', text: 'read and validate the config and the files it names, then exit (0 valid, 78 not) without touching the firewall: what the package runs before restarting on an upgrade' },
    ],
    notes: [
      discovery,
      'It refuses to start (KGW_RIVAL_RUNNING) while knockd (with knock doors) or fwknopd (with SPA) runs in the same network namespace: both would answer the same packets.',
      'SIGHUP reloads the config (checked first: a config that does not load keeps the running one and is logged as daemon.reload_failed), reopens the log file and keeps every grant. SIGTERM/SIGINT stop in order.',
    ],
  },
  {
    name: 'knock',
    synopsis: ['knock HOST PORT[:tcp|:udp]… [-u] [-d MS] [-4|-6] [-v]', 'knock --relay URL --key FILE DOOR [--ip IP]'],
    summary: "knock on a gateway: a port sequence (knockd's `knock` arguments) or a signed knock through a relay",
    options: [
      { long: 'udp', short: 'u', text: 'knock with UDP by default' },
      { long: 'delay', short: 'd', arg: 'MS', text: 'wait this long between knocks (0..60000 ms)' },
      ...family,
      { long: 'verbose', short: 'v', text: 'print each knock' },
      { long: 'relay', arg: 'URL', text: 'knock through this relay (NAT-safe)' },
      { long: 'key', arg: 'FILE', text: 'the client key file made by knockgw keygen' },
      { long: 'ip', arg: 'IP', text: 'sign this address into the relay knock (granted to it or not at all)' },
    ],
  },
  { name: 'status', synopsis: ['status [--json] [--control SOCKET]'], summary: 'show the running daemon: engines, store, live grants', options: [json, control] },
  {
    name: 'console',
    synopsis: ['console [--listen 127.0.0.1:9465] [--control SOCKET]'],
    summary: 'serve a live page of who can reach what (grants, store, clouds, knocks of the last hour) on loopback, with revoke',
    options: [{ long: 'listen', arg: 'ADDR:PORT', text: 'a loopback address and port (default 127.0.0.1:9465; port 0 picks one)' }, control],
    notes: ['Reach it from your machine with `ssh -L 9465:127.0.0.1:9465 HOST` and open the URL it prints: the page needs that session token (a cookie after the first visit) and refuses any request without it (403, logged as console.denied).'],
  },
  { name: 'revoke', synopsis: ['revoke IP [--control SOCKET]'], summary: 'close every grant of an address now', options: [control] },
  {
    name: 'doctor',
    synopsis: ['doctor [--config FILE.yaml | --knockd-config FILE] [--fwknop-access FILE …] [--firewall KIND]'],
    summary: 'check tools, Node version, privileges, interfaces, engines, conflicting rules and the SSH lock-out risk',
    options: [...configSource, ...runtime.filter((o) => ['interface', 'engine', 'firewall', 'ports'].includes(o.long))],
    notes: [discovery, 'Exit 0 when nothing is an error (warnings allowed).'],
  },
  {
    name: 'install',
    synopsis: ['install [--config FILE.yaml | --knockd-config FILE] [--fwknop-access FILE …] [OPTIONS] [--root DIR]'],
    summary: 'write and enable the systemd units: base rules at boot, then the daemon',
    options: [...configSource, ...runtime, { long: 'root', arg: 'DIR', text: 'write the units under DIR and touch nothing live (packaging, tests)' }],
    notes: [discovery],
  },
  { name: 'uninstall', synopsis: ['uninstall [--root DIR]'], summary: 'rollback: remove the units and every rule knockgw created, nothing else', options: [{ long: 'root', arg: 'DIR', text: 'remove the units under DIR only' }] },
  {
    name: 'base',
    synopsis: ['base [--config FILE.yaml | --knockd-config FILE] [--fwknop-access FILE …] [--firewall KIND]'],
    summary: 'boot: install the base rules (protected ports closed) and exit',
    options: [...configSource, ...runtime.filter((o) => ['interface', 'engine', 'firewall', 'ports'].includes(o.long))],
    notes: [discovery],
  },
  {
    name: 'relay',
    synopsis: ['relay --listen ADDR:PORT --keys FILE [--store URL] [--trusted-proxies N] [--public-url-v4 URL] [--public-url-v6 URL]'],
    summary: 'run a stand-alone relay for clients behind NAT',
    options: [
      { long: 'listen', arg: 'ADDR:PORT', text: 'where to listen, e.g. 0.0.0.0:8443' },
      { long: 'store', arg: 'URL', text: 'the gateways\' Redis (default memory)' },
      { long: 'keys', arg: 'FILE', text: 'the keys file shared with the gateway' },
      { long: 'trusted-proxies', arg: 'N', text: 'proxies in front whose X-Forwarded-For entry is trusted (0..10)' },
      { long: 'public-url-v4', arg: 'URL', text: 'the relay\'s IPv4-only URL (for phones)' },
      { long: 'public-url-v6', arg: 'URL', text: 'the relay\'s IPv6-only URL (for phones)' },
    ],
  },
  {
    name: 'keygen',
    synopsis: ['keygen --id ID [--alg ALG] [--door DOOR]… [--out FILE]'],
    summary: "write a client's private key file and print its keys-file entry",
    options: [
      { long: 'id', arg: 'ID', text: 'the client id' },
      { long: 'alg', arg: 'ALG', choices: ['ed25519', 'hmac-sha256', 'ecdsa-p256'], text: 'the key algorithm (default ed25519)' },
      { long: 'door', arg: 'DOOR', text: 'a door the client may open (repeatable)' },
      { long: 'out', arg: 'FILE', text: 'where to write the private key file' },
    ],
  },
  {
    name: 'enroll',
    synopsis: ['enroll --door DOOR [--relay URL] [--name NAME] [--expires 15m] [--control SOCKET]'],
    summary: 'print a one-time enrollment link (and a QR code) for a phone',
    options: [
      { long: 'door', arg: 'DOOR', text: 'the door the device may open' },
      { long: 'relay', arg: 'URL', text: 'the relay URL in the link' },
      { long: 'name', arg: 'NAME', text: 'a name for the device' },
      { long: 'expires', arg: 'DURATION', text: 'how long the link is valid: 90s, 15m, 2h (at most 24h)' },
      control,
    ],
  },
  { name: 'devices', synopsis: ['devices list [--json] [--control SOCKET]', 'devices revoke ID [--control SOCKET]'], summary: 'list or revoke enrolled phones and browsers', words: ['list', 'revoke'], options: [json, control] },
  {
    name: 'ssh',
    synopsis: ['ssh HOST [PORT] [--door DOOR --relay URL --key FILE | --sequence P[:udp],… | --spa FWKNOPRC] [-4|-6] [--wait 10s]'],
    summary: 'ssh ProxyCommand: knock for the exact address ssh uses, wait for the port, then carry ssh\'s bytes',
    options: [
      { long: 'door', arg: 'DOOR', text: 'the door to knock through the relay' },
      { long: 'relay', arg: 'URL', text: 'knock through this relay' },
      { long: 'key', arg: 'FILE', text: 'the client key file' },
      { long: 'sequence', arg: 'PORTS', text: 'knock this sequence, e.g. 7000,8000,9000:udp' },
      { long: 'spa', arg: 'FILE', text: 'send an fwknop SPA packet with the keys of this ~/.fwknoprc' },
      ...family,
      { long: 'wait', arg: 'DURATION', text: 'how long to wait for the port after the knock (default 10s)' },
    ],
  },
  { name: 'completion', synopsis: ['completion bash|zsh'], summary: 'print a shell completion script', words: ['bash', 'zsh'], options: [], notes: ['bash: `source <(knockgw completion bash)`; zsh: `knockgw completion zsh > "${fpath[1]}/_knockgw"`.'] },
  { name: 'help', synopsis: ['help [COMMAND]'], summary: 'show the overview, or the help of one command', options: [] },
];

/** Options every command takes. */
export const GLOBAL_OPTIONS: readonly OptionHelp[] = [
  { long: 'help', short: 'h', text: 'show this help and exit' },
  { long: 'version', short: 'V', text: 'print the version and exit (knockgw --version)' },
];

export function findCommand(name: string | undefined): CommandHelp | undefined {
  return COMMANDS.find((c) => c.name === name);
}

const optionLabel = (o: OptionHelp): string => `${o.short ? `-${o.short}, ` : ''}--${o.long}${o.arg ? ` ${o.arg}` : ''}`;

/** `knockgw CMD --help`. */
export function renderCommandHelp(c: CommandHelp): string {
  const options = [...c.options, GLOBAL_OPTIONS[0]].filter((o): o is OptionHelp => o !== undefined);
  const width = Math.min(34, Math.max(...options.map((o) => optionLabel(o).length)));
  const lines = [
    ...c.synopsis.map((s, i) => `${i === 0 ? 'usage: ' : '       '}knockgw ${s}`),
    '',
    c.summary,
    '',
    'options:',
    ...options.map((o) => {
      const label = optionLabel(o);
      const text = `${o.text}${o.choices ? ` (${o.choices.join('|')})` : ''}`;
      return label.length > width ? `  ${label}\n  ${' '.repeat(width)}  ${text}` : `  ${label.padEnd(width)}  ${text}`;
    }),
    ...(c.notes?.length ? ['', ...c.notes] : []),
  ];
  return `${lines.join('\n')}\n`;
}

/** `knockgw --help`: one line per command. */
export function renderOverview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: knockgw COMMAND [OPTIONS]   (knockgw COMMAND --help for its options)',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'options:',
    ...GLOBAL_OPTIONS.map((o) => `  ${optionLabel(o).padEnd(16)}  ${o.text}`),
    '',
  ].join('\n');
}

/** The lines under a usage error's one-line message: the command's first synopsis and where to look. */
export function usageHint(name: string | undefined): string {
  const c = findCommand(name);
  return c ? `usage: knockgw ${c.synopsis.join('\n       knockgw ')}\ntry knockgw ${c.name} --help` : 'usage: knockgw COMMAND [OPTIONS]\ntry knockgw --help';
}
