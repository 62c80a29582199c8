// One chaos run: the lab, the store side, three daemons, then three kinds of actors at once until
// the time is up — a fault loop (a seeded shuffle of every kind, one fault at a time, a calm gap
// after each heal), one session loop per client address (knock, then revoke, close, expire, or
// extend and expire), and a probe loop (every address against every node) — and the checker.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAIN } from '../../test/helpers/gateway.ts';
import { startAgent, type Agent } from './agent-client.ts';
import { checkRun, type ChaosFigures, type FaultRecord, type ProbeRecord, type SessionKind, type SessionRecord } from './checker.ts';
import { applyFault, FAULT_KINDS, type FaultContext, type FaultKind } from './faults.ts';
import { createChaosLab } from './lab.ts';
import { configYaml, DOORS, NODES, startNode, type GatewayNode } from './nodes.ts';
import { startRedisSide } from './redis.ts';
import { createRng, type Rng } from './rng.ts';

export interface ChaosOptions {
  readonly seconds: number;
  readonly seed: number;
  readonly maxStalenessS?: number;
  /** Writes every operation, fault and observation there as JSON. */
  readonly recordTo?: string;
  readonly log?: (line: string) => void;
}

export interface ChaosResult extends ChaosFigures {
  readonly seed: number;
  readonly seconds: number;
  readonly maxStalenessS: number;
}

const CLIENTS = Array.from({ length: 6 }, (_, i) => `198.18.0.${101 + i}`);
const PROBE_TIMEOUT_MS = 400;
const ACK_WITHIN_MS = 2000;
const execFileP = promisify(execFile);

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const log = opts.log ?? (() => undefined);
  const maxStalenessS = opts.maxStalenessS ?? 4;
  const rng = createRng(opts.seed);
  const dir = await mkdtemp(join(tmpdir(), 'knockgw-chaos-'));
  const lab = await createChaosLab(CLIENTS);
  let agent: Agent | undefined;
  try {
    const redis = await startRedisSide(lab, dir);
    const config = join(dir, 'knockgw.yaml');
    await writeFile(config, configYaml(maxStalenessS));
    const nodes = await Promise.all(NODES.map((n) => startNode(lab, n, dir, config, redis.url)));
    agent = startAgent(lab.member('client'));
    log(`lab up: 3 nodes, ${redis.url}; running ${opts.seconds} s with seed ${opts.seed}`);

    const sessions: SessionRecord[] = [];
    const probes: ProbeRecord[] = [];
    const faults: FaultRecord[] = [];
    const ctx: FaultContext = { nodes, redis, dir, config };
    const startedAt = Date.now();
    const stopAt = startedAt + opts.seconds * 1000;
    let faultsDone = false;

    const probeLoop = async (a: Agent): Promise<void> => {
      const pairs = CLIENTS.flatMap((ip) => nodes.map((n) => [ip, n.member.ip, n.name] as const));
      while (!faultsDone || Date.now() < stopAt) {
        const at = Date.now();
        const open = await a.probe(pairs.map(([ip, to]) => [ip, to] as const), PROBE_TIMEOUT_MS);
        pairs.forEach(([ip, , node], i) => probes.push({ at, ip, node, open: open[i] ?? false }));
        await sleep(50);
      }
    };

    const faultLoop = async (): Promise<void> => {
      const frng = rng.fork(1000);
      let order: FaultKind[] = [];
      await sleep(3000);
      while (Date.now() < stopAt - 3000) {
        if (order.length === 0) order = frng.shuffle(FAULT_KINDS);
        const kind = order.shift() as FaultKind;
        const fault = await applyFault(kind, ctx, (xs) => frng.pick(xs));
        const rec: FaultRecord = { kind, target: fault.target, at: Date.now() };
        faults.push(rec);
        log(`+${rec.at - startedAt} ms fault ${kind} on ${fault.target}`);
        await sleep(frng.int(1500, 2500));
        await fault.heal();
        rec.healedAt = Date.now();
        log(`healed ${kind} on ${fault.target} after ${rec.healedAt - rec.at} ms`);
        await sleep(frng.int(2800, 3500));
      }
      faultsDone = true;
    };

    const live = (): GatewayNode[] => nodes.filter((n) => n.daemon);
    const sessionLoop = async (a: Agent, ip: string, srng: Rng): Promise<void> => {
      await sleep(srng.int(0, 3000));
      while (Date.now() < stopAt - 9000) {
        const kind = srng.pick<SessionKind>(['revoke', 'close', 'expire', 'extend']);
        const node = srng.pick(live());
        const door = kind === 'revoke' || kind === 'close' ? DOORS.long : DOORS.short;
        const s: SessionRecord = { ip, kind, node: node.name, knockAt: Date.now(), end: Infinity };
        sessions.push(s);
        await a.knock(ip, node.member.ip, door.sequence);
        if (kind === 'expire' || kind === 'extend') s.end = s.knockAt + DOORS.short.ttlS * 1000;
        const ackDeadline = Date.now() + ACK_WITHIN_MS;
        while (Date.now() < ackDeadline && s.ackAt === undefined) {
          const at = Date.now();
          if ((await a.probe([[ip, node.member.ip]], 300))[0]) s.ackAt = at;
          else await sleep(50);
        }
        await sleep(srng.int(1500, 3500));
        const other = srng.pick(live());
        s.endNode = other.name;
        if (kind === 'revoke') {
          // A node killed meanwhile refuses: the operator revokes on another one.
          for (const n of [other, ...nodes.filter((x) => x !== other)]) {
            if (!n.daemon) continue;
            const ok = await execFileP(process.execPath, [MAIN, 'revoke', ip, '--control', n.control]).then(() => true, () => false);
            s.end = Date.now();
            s.endNode = n.name;
            if (ok) break;
          }
        } else if (kind === 'close') {
          s.end = Date.now();
          await a.knock(ip, other.member.ip, DOORS.long.close);
        } else if (kind === 'extend') {
          const at = Date.now();
          await a.knock(ip, other.member.ip, DOORS.short.sequence);
          s.end = at + DOORS.short.ttlS * 1000;
        }
        await sleep(Math.max(0, s.end - Date.now()));
        // Rest past the zombie bound, so anything still open now is attributed to this session.
        await sleep(maxStalenessS * 1000 + srng.int(1500, 3000));
      }
    };

    const a = agent;
    const actors = [faultLoop(), ...CLIENTS.map((ip, i) => sessionLoop(a, ip, rng.fork(i)))];
    const probing = probeLoop(a);
    // Whatever fails first is the error reported (the probe loop fails too once the agent goes).
    probing.catch(() => undefined);
    try {
      await Promise.all(actors);
    } finally {
      faultsDone = true;
    }
    await probing;
    const figures = checkRun({ sessions, probes, faults, maxStalenessMs: maxStalenessS * 1000 });
    if (opts.recordTo) await writeFile(opts.recordTo, JSON.stringify({ seed: opts.seed, sessions, faults, probes, logs: Object.fromEntries(nodes.map((n) => [n.name, n.lives.flatMap((d) => d.events)])) }));
    return { ...figures, seed: opts.seed, seconds: opts.seconds, maxStalenessS };
  } finally {
    agent?.close();
    await lab.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}
