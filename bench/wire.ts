// Knock→open from packet timestamps on the client's interface: the kernel stamps the last knock
// SYN leaving and the protected port's SYN-ACK arriving, so a busy machine delaying the probe
// process does not inflate the number (it only coarsens the poll cadence).
import type { ChildProcess } from 'node:child_process';
import { kgwError } from '../gateway/core/errors.ts';
import type { Host } from '../test/helpers/netns.ts';
import { sleep } from './lib.ts';

interface WireEvent { readonly ts: number; readonly kind: 'knock' | 'poll' | 'open'; readonly clientPort: number }

export interface WireLatency {
  /** Wall-clock time (Unix ms, kernel stamp) of the last knock SYN. */
  readonly knockAt: number;
  /** Last knock SYN out → first SYN-ACK from the protected port in. */
  readonly latencyMs: number;
  /** Last knock SYN → first poll SYN: the client's own delay, part of latencyMs. */
  readonly firstPollGapMs: number;
  /** Last knock SYN → the poll SYN sent before the one that succeeded (0 when the first poll succeeded): the port opened after this. */
  readonly openedAfterMs: number;
}

export interface WireClock {
  /** Position to measure from (before a knock). */
  mark(): number;
  /** The first open after `mark`; undefined when its packets were not seen within waitMs. */
  latencyAfter(mark: number, waitMs?: number): Promise<WireLatency | undefined>;
  stop(): void;
}

// "1795611372.602426 IP 198.18.0.10.36714 > 198.18.0.1.9000: Flags [S], …" or, for a UDP trigger
// (an SPA packet), "… > 198.18.0.1.62201: UDP, length 180".
const LINE = /^(\d+\.\d+) IP6? \S+?\.(\d+) > \S+?\.(\d+): (?:Flags \[([^\]]*)\]|(UDP))/;

/** `trigger`: what starts the clock — the last knock's SYN (tcp, default) or an SPA datagram (udp). */
export async function startWireClock(client: Host, iface: string, lastKnockPort: number, protectedPort: number, trigger: 'tcp' | 'udp' = 'tcp'): Promise<WireClock> {
  const syn = 'tcp[tcpflags] & tcp-syn != 0';
  const knock = trigger === 'udp' ? `(udp and dst port ${lastKnockPort})` : `(tcp and dst port ${lastKnockPort} and ${syn})`;
  const filter = `${knock} or (tcp and ((dst port ${protectedPort} and ${syn}) or (src port ${protectedPort} and ${syn})))`;
  const child: ChildProcess = client.spawn('tcpdump', ['-i', iface, '-n', '-tt', '-l', '-U', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: WireEvent[] = [];
  let pending = '';
  child.stdout?.on('data', (d: Buffer) => {
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const m = LINE.exec(line);
      if (!m) continue;
      const [, ts, sport, dport, flags, udp] = m;
      const from = Number(sport), to = Number(dport), at = Number(ts) * 1000;
      if ((udp === 'UDP' ? trigger === 'udp' : flags === 'S' && trigger === 'tcp') && to === lastKnockPort) events.push({ ts: at, kind: 'knock', clientPort: from });
      else if (flags === 'S' && to === protectedPort) events.push({ ts: at, kind: 'poll', clientPort: from });
      else if (flags === 'S.' && from === protectedPort) events.push({ ts: at, kind: 'open', clientPort: to });
    }
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (/listening on/.test(err)) resolve();
    });
    child.once('exit', (code) => reject(kgwError('KGW_CAPTURE_FAILED', `bench tcpdump in ${client.ns} exited (${code}): ${err.trim()}`)));
  });
  return {
    mark: () => events.length,
    async latencyAfter(mark, waitMs = 500) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const knock = events.findIndex((e, i) => i >= mark && e.kind === 'knock');
        const k = events[knock];
        const openAt = events.findIndex((e, i) => i > knock && e.kind === 'open');
        const open = events[openAt];
        if (k && open) {
          const polls = events.slice(knock + 1, openAt).filter((e) => e.kind === 'poll');
          const winner = polls.findIndex((p) => p.clientPort === open.clientPort);
          const before = winner > 0 ? polls[winner - 1] : undefined;
          return {
            knockAt: k.ts,
            latencyMs: open.ts - k.ts,
            firstPollGapMs: (polls[0]?.ts ?? open.ts) - k.ts,
            openedAfterMs: before ? before.ts - k.ts : 0,
          };
        }
        if (Date.now() > deadline) return undefined;
        await sleep(5);
      }
    },
    stop: () => void child.kill('SIGKILL'),
  };
}
