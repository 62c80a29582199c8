// Runs inside the client namespace (one process for every client address, so a probe round costs
// no process start): JSON lines on stdin, one answer line each on stdout.
//   {"id":1,"op":"knock","from":"198.18.0.101","to":"198.18.0.21","ports":[7000,8000,9000]}
//   {"id":2,"op":"probe","pairs":[["198.18.0.101","198.18.0.21"],…],"timeoutMs":300}
//     → {"id":2,"open":[true,false,…]}: a real TCP handshake with port 22, from that address.
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { knock } from '../../gateway/client/knock.ts';

const PROTECTED_PORT = 22;

type Request =
  | { id: number; op: 'knock'; from: string; to: string; ports: number[] }
  | { id: number; op: 'probe'; pairs: [string, string][]; timeoutMs: number };

function probe(from: string, to: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: to, port: PROTECTED_PORT, localAddress: from });
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

const answer = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const req = JSON.parse(line) as Request;
  if (req.op === 'knock') {
    void knock({ host: req.to, knocks: req.ports.map((port) => ({ port, proto: 'tcp' })), delayMs: 0, localAddress: req.from }).then(
      () => answer({ id: req.id }),
      (err: unknown) => answer({ id: req.id, error: String(err) }),
    );
  } else {
    void Promise.all(req.pairs.map(([from, to]) => probe(from, to, req.timeoutMs))).then((open) => answer({ id: req.id, open }));
  }
}
