// TCP checks from inside a namespace with the project's own Node, so the tests need no netcat:
// `ip netns exec NS node -e …` connects, and the exit status says whether the handshake finished.
import type { ChildProcess } from 'node:child_process';
import type { Host } from './netns.ts';

// argv: address, port, timeout ms. Exit 0 = connected, 1 = refused / unreachable, 2 = no answer in time.
const PROBE = `const [a,p,t]=process.argv.slice(1);const s=require('node:net').connect({host:a,port:+p});`
  + `const k=setTimeout(()=>process.exit(2),+t);s.on('connect',()=>{clearTimeout(k);s.destroy();process.exit(0)});s.on('error',()=>process.exit(1));`;

// argv: address, port. stdin → socket → stdout until either side ends.
const SESSION = `const [a,p]=process.argv.slice(1);const s=require('node:net').connect({host:a,port:+p});`
  + `process.stdin.pipe(s);s.pipe(process.stdout);s.on('error',()=>process.exit(1));s.on('close',()=>process.exit(0));`;

/** True when `host` completes a TCP handshake with addr:port within `timeoutMs` (default 1 s). */
export async function tcpConnects(host: Host, addr: string, port: number, timeoutMs = 1000): Promise<boolean> {
  const r = await host.exec(process.execPath, ['-e', PROBE, addr, String(port), String(timeoutMs)], { allowFail: true });
  return r.code === 0;
}

/** A long-lived TCP connection from `host`: write to its stdin, read what comes back on stdout. */
export function tcpSession(host: Host, addr: string, port: number): ChildProcess {
  return host.spawn(process.execPath, ['-e', SESSION, addr, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] });
}
