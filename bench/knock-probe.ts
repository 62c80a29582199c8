// The bench's client, run inside a client namespace (`node bench/knock-probe.ts`) and driven by
// JSON lines on stdin, one answer line each on stdout. It knocks with plain non-blocking connects
// (one SYN each; a knock port answers RST or nothing), or sends one fresh SPA datagram, and
// measures knock→open as the time from the last knock's connect() (the SPA send) to the first
// completed handshake on the protected port, polling with a fresh connect every 0.5 ms. The first
// 5 ms of a poll spin on setImmediate (so an in-kernel open is seen within microseconds); after
// that the loop sleeps in Atomics.wait between attempts, so a slow open costs ≤ 0.5 ms of
// detection delay and almost no CPU (this process shares a 2-core machine with the daemon under test).
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { encodeSpa } from '../gateway/protocol/fwknop.ts';
import { HMAC_KEY_BASE64, KEY_BASE64 } from '../test/fixtures/fwknop/packets.ts';

const Request = z.discriminatedUnion('op', [
  z.object({ op: z.literal('open'), id: z.number(), host: z.string(), knocks: z.array(z.number().int()), port: z.number().int(), timeoutMs: z.number() }),
  z.object({ op: z.literal('close'), id: z.number(), host: z.string(), knocks: z.array(z.number().int()), port: z.number().int(), timeoutMs: z.number() }),
  z.object({ op: z.literal('probe'), id: z.number(), host: z.string(), port: z.number().int(), timeoutMs: z.number() }),
  // A fresh SPA packet (this client's clock, the bench keys) for allowIp to host:spaPort, then the poll.
  z.object({ op: z.literal('spa'), id: z.number(), host: z.string(), allowIp: z.string(), spaPort: z.number().int(), port: z.number().int(), timeoutMs: z.number() }),
]);
type Request = z.infer<typeof Request>;

const POLL_MS = 0.5;
const SPIN_MS = 5;
/** A poll SYN with no answer after this long was dropped: give up on that socket. */
const ATTEMPT_LIFETIME_MS = 25;
const napCell = new Int32Array(new SharedArrayBuffer(4));

const immediate = (): Promise<void> => new Promise((r) => setImmediate(r));

function knock(host: string, ports: readonly number[]): void {
  for (const port of ports) {
    const s = connect({ host, port });
    s.on('error', () => s.destroy());
    s.on('connect', () => s.destroy());
    // The SYN leaves on the next tick (connect() of an IP literal is deferred); drop the socket
    // soon after so nothing lingers when the knock port is filtered.
    setTimeout(() => s.destroy(), 200).unref();
  }
}

/**
 * Sends the knocks, then polls host:port: the first attempt is queued right behind the last knock
 * (same tick, so its SYN follows within microseconds), then one every POLL_MS. Resolves with
 * ms from the last knock's connect() to the first completed handshake, or undefined at the deadline.
 */
const udp = createSocket('udp4');
const SPA_KEYS = { keyBase64: KEY_BASE64, hmacKeyBase64: HMAC_KEY_BASE64, hmacDigest: 'sha256' } as const;

/** Sends one SPA datagram; like a knock, the send is queued now and leaves on the next tick. */
function spa(host: string, spaPort: number, packet: string): void {
  udp.send(Buffer.from(packet, 'latin1'), spaPort, host);
}

async function knockAndPoll(host: string, knocks: readonly number[] | (() => void), port: number, timeoutMs: number): Promise<number | undefined> {
  const live = new Map<Socket, number>();
  let doneAt: number | undefined;
  const attempt = (now: number): void => {
    const s = connect({ host, port });
    live.set(s, now);
    s.on('connect', () => {
      doneAt ??= performance.now();
    });
    s.on('error', () => {
      live.delete(s);
      s.destroy();
    });
  };
  if (typeof knocks === 'function') knocks();
  else knock(host, knocks);
  attempt(performance.now());
  // Queued after the knocks' deferred connects: t0 is taken right after the last knock SYN left.
  const t0 = await new Promise<number>((r) => process.nextTick(() => r(performance.now())));
  let nextAt = t0 + POLL_MS;
  const deadline = t0 + timeoutMs;
  try {
    while (doneAt === undefined) {
      await immediate();
      if (doneAt !== undefined) break;
      const now = performance.now();
      if (now >= deadline) return undefined;
      if (now >= nextAt) {
        attempt(now);
        nextAt = Math.max(nextAt + POLL_MS, now);
        for (const [old, at] of live) {
          if (now - at > ATTEMPT_LIFETIME_MS) {
            old.destroy();
            live.delete(old);
          }
        }
      }
      if (now - t0 > SPIN_MS) {
        const nap = nextAt - performance.now();
        if (nap > 0) Atomics.wait(napCell, 0, 0, nap);
      }
    }
    return doneAt - t0;
  } finally {
    // RST, not FIN: thousands of TIME_WAIT sockets to the same port slow down the ephemeral port
    // search of the next connect() (it showed as ms between the last knock and the first poll).
    for (const s of live.keys()) s.resetAndDestroy();
  }
}

/** True when a connect to host:port completes within timeoutMs. */
function probe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      s.resetAndDestroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.on('connect', () => finish(true));
    s.on('error', () => finish(false));
  });
}

async function handle(req: Request): Promise<Record<string, unknown>> {
  switch (req.op) {
    case 'open': {
      const latencyMs = await knockAndPoll(req.host, req.knocks, req.port, req.timeoutMs);
      return latencyMs === undefined ? { ok: false } : { ok: true, latencyMs };
    }
    case 'close': {
      knock(req.host, req.knocks);
      const t0 = performance.now();
      // Closed = a fresh connect gets no answer; established state never matters here.
      while (performance.now() - t0 < req.timeoutMs) {
        if (!(await probe(req.host, req.port, 60))) return { ok: true, closedMs: performance.now() - t0 };
        await new Promise((r) => setTimeout(r, 10));
      }
      return { ok: false };
    }
    case 'probe':
      return { ok: true, open: await probe(req.host, req.port, req.timeoutMs) };
    case 'spa': {
      // Built before the clock starts: what is measured is the packet's trip, not the encoding.
      const packet = encodeSpa({ allowIp: req.allowIp, ports: [{ port: req.port, proto: 'tcp' }], timestamp: Math.floor(Date.now() / 1000) }, SPA_KEYS);
      const latencyMs = await knockAndPoll(req.host, () => spa(req.host, req.spaPort, packet), req.port, req.timeoutMs);
      return latencyMs === undefined ? { ok: false } : { ok: true, latencyMs };
    }
  }
}

const rl = createInterface({ input: process.stdin });
let chain: Promise<void> = Promise.resolve();
rl.on('line', (line) => {
  // One request at a time: a measurement must not share the event loop with another.
  chain = chain.then(async () => {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      json = undefined;
    }
    const parsed = Request.safeParse(json);
    if (!parsed.success) {
      process.stdout.write(`${JSON.stringify({ id: -1, ok: false, error: parsed.error.message })}\n`);
      return;
    }
    const answer = await handle(parsed.data);
    process.stdout.write(`${JSON.stringify({ id: parsed.data.id, ...answer })}\n`);
  });
});
udp.unref();
rl.on('close', () => void chain.then(() => process.exit(0)));
process.stdout.write(`${JSON.stringify({ id: 0, ready: true })}\n`);
