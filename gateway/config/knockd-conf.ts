// /etc/knockd.conf, read unchanged with knockd 0.8's rules (src/knockd.c parseconfig): lines are
// trimmed (so indented lines work), `#` starts a comment only at the beginning of a line,
// directive names are case-insensitive, `[options]` is lower-case, UseSyslog is the only
// directive without a value, `command` is an alias of `start_command`, and when a directive
// repeats the last one wins. Defaults: seq_timeout 25 s, cmd_timeout 10 s, no tcpflags filter.
// Unlike knockd, a bad port or timeout is an error instead of atoi()'s silent 0.
import { MAX_TIMEOUT_S } from '../core/timers.ts';
import { kgwError } from '../core/errors.ts';
import type { PortSpec } from '../core/grant.ts';
import { parseIp } from '../core/ip.ts';
import { checkPortSpec, checkTcpFlags, MAX_SEQUENCE_LENGTH, sameSequence } from '../core/port-spec.ts';
import { commandIntent, compileCommand, type CommandIntent, type CompiledCommand } from '../core/command-intent.ts';
import type { CommandSpec, Door, KnockSequence, SequenceAction, TcpFlagMatch } from '../core/types.ts';

export const KNOCKD_SEQ_TIMEOUT_S = 25;
export const KNOCKD_CMD_TIMEOUT_S = 10;

export interface KnockdConf {
  readonly interface?: string;
  readonly logFile?: string;
  readonly pidFile?: string;
  readonly useSyslog: boolean;
  readonly doors: readonly Door[];
  readonly sequences: readonly KnockSequence[];
  /** Ports the understood iptables intents open (empty when every door runs plain commands). */
  readonly openedPorts: readonly PortSpec[];
}

interface Value { readonly value: string; readonly line: number }

interface Section {
  readonly name: string;
  readonly line: number;
  readonly values: Map<string, Value>;
}

const OPTION_KEYS = new Set(['LOGFILE', 'PIDFILE', 'INTERFACE']);
// knockd's aliases, folded to one slot each.
const DOOR_KEYS: Readonly<Record<string, string>> = {
  TARGET: 'TARGET', SEQUENCE: 'SEQUENCE', ONE_TIME_SEQUENCES: 'ONE_TIME_SEQUENCES',
  SEQ_TIMEOUT: 'SEQ_TIMEOUT', TIMEOUT: 'SEQ_TIMEOUT', CMD_TIMEOUT: 'CMD_TIMEOUT', TCPFLAGS: 'TCPFLAGS',
  COMMAND: 'START_COMMAND', START_COMMAND: 'START_COMMAND', COMMAND_6: 'START_COMMAND_6', START_COMMAND_6: 'START_COMMAND_6',
  STOP_COMMAND: 'STOP_COMMAND', STOP_COMMAND_6: 'STOP_COMMAND_6',
};
const DOOR_KEY_LIST = 'sequence, one_time_sequences, seq_timeout, tcpflags, command, start_command, stop_command, cmd_timeout, target (and command_6, start_command_6, stop_command_6)';

export function parseKnockdConf(text: string, path: string): KnockdConf {
  const fail: Fail = (line, message) => {
    throw kgwError('KGW_CONFIG_KNOCKD', `${path}:${line}: ${message}`, { file: path, line });
  };
  const options = new Map<string, Value>();
  let useSyslog = false;
  const sections: Section[] = [];
  let current: Section | 'options' | undefined;

  text.split(/\r?\n/).forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('[') && line.endsWith(']')) {
      const name = line.slice(1, -1).trim();
      if (name === '') fail(n, 'empty section name "[]"; name the door, e.g. [openSSH]');
      if (name === 'options') {
        current = 'options';
        return;
      }
      if (name.length > 127 || /[\p{Cc}]/u.test(name)) fail(n, `section name "[${name}]" must be 1-127 printable characters`);
      const dup = sections.find((s) => s.name === name);
      if (dup) fail(n, `section [${name}] is already defined at line ${dup.line}; give every door a unique name`);
      current = { name, line: n, values: new Map() };
      sections.push(current);
      return;
    }
    if (current === undefined) fail(n, `"${line}" is outside any section; directives belong to [options] or a door section such as [openSSH]`);
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim().toUpperCase();
    if (eq < 0) {
      if (key === 'USESYSLOG') useSyslog = true;
      else fail(n, `"${line}" is not a directive: expected "name = value" (only UseSyslog stands alone)`);
      return;
    }
    const value = line.slice(eq + 1).trim();
    if (current === 'options') {
      if (key === 'USESYSLOG') fail(n, 'UseSyslog takes no value: write just "UseSyslog"');
      if (!OPTION_KEYS.has(key)) fail(n, `unknown option "${key.toLowerCase()}" in [options]; knockd knows UseSyslog, LogFile, PidFile, Interface${DOOR_KEYS[key] ? ` ("${key.toLowerCase()}" belongs in a door section)` : ''}`);
      options.set(key, { value, line: n });
      return;
    }
    const slot = DOOR_KEYS[key];
    if (slot === undefined) {
      const hint = current.name.toLowerCase() === 'options' ? ' (the global section must be spelt [options], lower-case)' : OPTION_KEYS.has(key) ? ` ("${key.toLowerCase()}" belongs in [options])` : '';
      fail(n, `unknown directive "${key.toLowerCase()}" in [${current.name}]${hint}; a door section takes ${DOOR_KEY_LIST}`);
    }
    current.values.set(slot ?? key, { value, line: n });
  });

  const iface = options.get('INTERFACE');
  if (iface && !/^[A-Za-z0-9_.:@-]{1,15}$/.test(iface.value)) fail(iface.line, `Interface "${iface.value}" is not a network interface name (e.g. eth0)`);
  for (const k of ['LOGFILE', 'PIDFILE']) {
    const v = options.get(k);
    if (v && v.value === '') fail(v.line, `${k === 'LOGFILE' ? 'LogFile' : 'PidFile'} needs a path`);
  }

  const compiled = sections.map((s) => compileSection(s, path, fail));
  const { doors, sequences, openedPorts } = resolveDoors(compiled);
  const result: KnockdConf = {
    useSyslog,
    doors,
    sequences,
    openedPorts,
    ...(iface ? { interface: iface.value } : {}),
    ...(options.get('LOGFILE') ? { logFile: options.get('LOGFILE')?.value ?? '' } : {}),
    ...(options.get('PIDFILE') ? { pidFile: options.get('PIDFILE')?.value ?? '' } : {}),
  };
  return result;
}

type Fail = (line: number, message: string) => never;

interface CompiledSection {
  readonly section: Section;
  readonly base: Omit<KnockSequence, 'door' | 'action'>;
  /** Native open (with ttl), native close, or a command to run. */
  readonly plan:
    | { readonly kind: 'open'; readonly port: PortSpec; readonly ttlMs: number }
    | { readonly kind: 'close'; readonly port: PortSpec; readonly fallback: SequenceAction }
    | { readonly kind: 'command'; readonly action: SequenceAction };
}

function seconds(v: Value | undefined, fallback: number, name: string, min: number, fail: Fail): number {
  if (!v) return fallback;
  if (!/^\d{1,7}$/.test(v.value) || Number(v.value) < min) fail(v.line, `${name} = "${v.value}" is not a whole number of seconds${min > 0 ? ` (at least ${min})` : ''}`);
  // knockd takes up to 9999999 s; the kernel's set timeouts and Node's timers cannot hold that.
  if (Number(v.value) > MAX_TIMEOUT_S) fail(v.line, `${name} = ${v.value} is more than knockgw can hold: at most ${MAX_TIMEOUT_S} s (about 24.8 days)`);
  return Number(v.value);
}

function compileSection(s: Section, path: string, fail: Fail): CompiledSection {
  const at = (v: Value): string => `${path}:${v.line}`;
  const origin = `${path}:${s.line}`;

  const seqV = s.values.get('SEQUENCE');
  const otsV = s.values.get('ONE_TIME_SEQUENCES');
  let ports: PortSpec[] = [];
  if (otsV) {
    if (otsV.value === '') fail(otsV.line, 'one_time_sequences needs the path of a sequences file');
  } else if (seqV) {
    const items = seqV.value.split(',');
    if (items.length > MAX_SEQUENCE_LENGTH) fail(seqV.line, `sequence has ${items.length} ports; knockd allows at most ${MAX_SEQUENCE_LENGTH}`);
    ports = items.map((item) => {
      const p = checkPortSpec(item);
      return typeof p === 'string' ? fail(seqV.line, `in [${s.name}] sequence: ${p}`) : p;
    });
  } else {
    fail(s.line, `section [${s.name}] has no sequence; add e.g. "sequence = 7000,8000,9000" (or one_time_sequences = FILE)`);
  }

  const flagsV = s.values.get('TCPFLAGS');
  let tcpFlags: TcpFlagMatch = { require: 0, forbid: 0 };
  if (flagsV) {
    const f = checkTcpFlags(flagsV.value);
    tcpFlags = typeof f === 'string' ? fail(flagsV.line, f) : f;
  }

  const targetV = s.values.get('TARGET');
  const target = targetV ? parseIp(targetV.value)?.address ?? fail(targetV.line, `target "${targetV.value}" is not an IPv4 or IPv6 address`) : undefined;

  const seqTimeout = seconds(s.values.get('SEQ_TIMEOUT'), KNOCKD_SEQ_TIMEOUT_S, 'seq_timeout', 1, fail);
  const cmdTimeoutV = s.values.get('CMD_TIMEOUT');

  const base: Omit<KnockSequence, 'door' | 'action'> = {
    id: s.name,
    ports,
    timeoutMs: seqTimeout * 1000,
    tcpFlags,
    origin,
    ...(otsV ? { oneTimeSequencesFile: otsV.value } : {}),
    ...(target !== undefined ? { target } : {}),
  };

  const cmd = (slot: string): (CompiledCommand & { intent: CommandIntent | undefined }) | undefined => {
    const v = s.values.get(slot);
    if (!v) return undefined;
    const c = compileCommand(v.value, at(v));
    return { ...c, intent: commandIntent(c.argv) };
  };
  const start = cmd('START_COMMAND');
  const start6 = cmd('START_COMMAND_6');
  const stop = cmd('STOP_COMMAND');
  const stop6 = cmd('STOP_COMMAND_6');
  // knockd sleeps cmd_timeout between start and stop; 0 would close the door as it opens.
  const cmdTimeout = seconds(cmdTimeoutV, KNOCKD_CMD_TIMEOUT_S, 'cmd_timeout', stop || stop6 ? 1 : 0, fail);

  const spec = (v4: CompiledCommand | undefined, v6: CompiledCommand | undefined): CommandSpec | undefined => {
    if (!v4 && !v6) return undefined;
    // Without a v4 command knockd runs nothing for IPv4 knocks; an empty argv says the same.
    return { text: v4?.text ?? '', argv: v4?.argv ?? [], ...(v6 ? { argv6: v6.argv } : {}) };
  };
  const startSpec = spec(start, start6) ?? { text: '', argv: [] };
  const stopSpec = spec(stop, stop6);
  const commandAction: SequenceAction = {
    kind: 'command',
    start: startSpec,
    ...(stopSpec ? { stop: stopSpec, stopAfterMs: cmdTimeout * 1000 } : {}),
  };

  // An intent only when every command given is the same idiom for the same port: iptables in the
  // v4 slots, ip6tables in the _6 slots. A door whose only command is iptables is granted for
  // IPv6 knockers too: knockd would run iptables with an IPv6 address (and fail), leaving v6 port
  // 22 as open as the guide's unfiltered ip6tables left it; knockgw protects and grants both.
  const same = (c: { intent: CommandIntent | undefined } | undefined, kind: CommandIntent['kind'], family: 4 | 6, port: PortSpec): boolean =>
    c === undefined || (c.intent?.kind === kind && c.intent.family === family && c.intent.port.port === port.port && c.intent.port.proto === port.proto);
  const si = start?.intent;
  if (si && si.family === 4 && same(start6, si.kind, 6, si.port)) {
    if (si.kind === 'open' && same(stop, 'close', 4, si.port) && same(stop6, 'close', 6, si.port)) {
      return { section: s, base, plan: { kind: 'open', port: si.port, ttlMs: stop || stop6 ? cmdTimeout * 1000 : 0 } };
    }
    if (si.kind === 'close' && !stop && !stop6) return { section: s, base, plan: { kind: 'close', port: si.port, fallback: commandAction } };
  }
  return { section: s, base, plan: { kind: 'command', action: commandAction } };
}

function resolveDoors(compiled: readonly CompiledSection[]): Pick<KnockdConf, 'doors' | 'sequences' | 'openedPorts'> {
  const doors: Door[] = [];
  const sequences: KnockSequence[] = [];
  const openedPorts: PortSpec[] = [];
  for (const c of compiled) {
    const { plan } = c;
    if (plan.kind === 'open') {
      doors.push({ name: c.section.name, open: [plan.port], ttlMs: plan.ttlMs });
      if (!openedPorts.some((p) => p.port === plan.port.port && p.proto === plan.port.proto)) openedPorts.push(plan.port);
    } else if (plan.kind === 'command') {
      // A command door opens nothing natively; the entry keeps every sequence's door resolvable.
      doors.push({ name: c.section.name, open: [], ttlMs: 0 });
    }
  }
  for (const c of compiled) {
    const { plan } = c;
    if (plan.kind === 'open') {
      sequences.push({ ...c.base, door: c.section.name, action: { kind: 'open' } });
    } else if (plan.kind === 'command') {
      sequences.push({ ...c.base, door: c.section.name, action: plan.action });
    } else {
      // The close of the (first) door that opens exactly this port; with no such door the
      // iptables -D is all the user wrote, so it runs as written.
      const opener = doors.find((d) => sameSequence(d.open, [plan.port]));
      if (opener) sequences.push({ ...c.base, door: opener.name, action: { kind: 'close' } });
      else {
        doors.push({ name: c.section.name, open: [], ttlMs: 0 });
        sequences.push({ ...c.base, door: c.section.name, action: plan.fallback });
      }
    }
  }
  return { doors, sequences, openedPorts };
}
