// Run inside a client namespace: `node knock-latency.ts ADDR PORT CONTROL COUNT K1 K2 …`. Knocks,
// times the last knock's SYN → the first TCP handshake with ADDR:PORT that completes, revokes
// the grant through the daemon's control socket, waits for the port to shut, and repeats. Prints
// the latencies (ms) as one JSON array. Connects are fired every 0.2 ms side by side: a closed
// port drops SYNs silently, and one retransmitting connect would measure the kernel's backoff.
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { knock } from '../../gateway/client/knock.ts';

const [addr = '', portText = '', control = '', countText = '', ...knocks] = process.argv.slice(2);
const port = Number(portText);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** ms from now until a handshake completes (hrtime), or Infinity after `limitMs`. */
function firstConnect(limitMs: number): Promise<number> {
  const start = process.hrtime.bigint();
  const open = new Set<Socket>();
  return new Promise((resolve) => {
    let done = false;
    const finish = (ms: number): void => {
      done = true;
      for (const s of open) s.destroy();
      resolve(ms);
    };
    const fire = (): void => {
      if (done) return;
      const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
      if (elapsed > limitMs) return finish(Infinity);
      const s = connect({ host: addr, port });
      open.add(s);
      s.on('connect', () => { if (!done) finish(Number(process.hrtime.bigint() - start) / 1e6); });
      s.on('error', () => open.delete(s));
      setTimeout(() => { open.delete(s); s.destroy(); }, 50).unref();
      const next = process.hrtime.bigint() + 200_000n;
      const spin = (): void => void (process.hrtime.bigint() >= next ? fire() : setImmediate(spin));
      setImmediate(spin);
    };
    fire();
  });
}

const connects = (): Promise<boolean> => new Promise((resolve) => {
  const s = connect({ host: addr, port });
  const t = setTimeout(() => { s.destroy(); resolve(false); }, 200);
  s.on('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
  s.on('error', () => { clearTimeout(t); resolve(false); });
});

const revoke = (ip: string): Promise<void> => new Promise((resolve, reject) => {
  const req = request({ socketPath: control, path: '/v1/revoke', method: 'POST' }, (res) => { res.resume(); res.on('end', () => resolve()); });
  req.on('error', reject);
  req.end(JSON.stringify({ ip }));
});

const results: number[] = [];
for (let i = 0; i < Number(countText); i++) {
  await knock({ host: addr, knocks: knocks.map((k) => ({ port: Number(k), proto: 'tcp' as const })), delayMs: 0 });
  results.push(await firstConnect(2000));
  await revoke(process.env.KGW_CLIENT_IP ?? '');
  while (await connects()) await sleep(20);
  // Let the knock machine forget the last sequence's state before the next one.
  await sleep(100);
}
console.log(JSON.stringify(results));
