// The SPA port as a plain UDP socket behind the kernel intake (core/nft-intake.ts,
// firewall/iptables-intake.ts): the kernel shape-checks and rate-limits, and hands over only what
// passed, by recvmsg — no capture process, no pipe, no pcap parse. One socket per family (IPv6
// only where the host has it). Each datagram is handed to the consumer synchronously, in the
// socket's own event, with one record object reused for every datagram: a flood costs Node's
// buffer and this call, nothing queued in the daemon. The kernel's receive buffer is the only
// queue (bounded by RECV_BUFFER_BYTES; what overflows is counted by the kernel as UDP
// RcvbufErrors, `nstat -az UdpRcvbufErrors`). The socket never sends anything.
import { createSocket, type Socket } from 'node:dgram';
import { kgwError } from '../../core/errors.ts';
import type { Logger } from '../../ports.ts';
import { wallNow } from '../../kit/wall-clock.ts';

/** What the consumer sees of one datagram; valid only during the call (the object is reused). */
export interface SpaDatagram {
  src: string;
  payload: Uint8Array;
  /** Wall-clock ms of the receipt (kit/wall-clock.ts); the socket gives no earlier stamp. */
  ts: number;
  readAt: number;
  parsedAt: number;
}

export interface SpaSocketOptions {
  readonly port: number;
  readonly logger: Logger;
  /** Bind addresses; default every address of each family. */
  readonly bind4?: string;
  readonly bind6?: string;
}

export interface SpaSocket {
  /** Binds and delivers each datagram to `onDatagram`; `onEnd` hears of a socket that failed after. */
  start(onDatagram: (d: SpaDatagram) => void, onEnd: (err: unknown) => void): Promise<void>;
  close(): Promise<void>;
}

/** About 2,000 datagrams of fwknop's largest size: a second of the intake's total cap. */
const RECV_BUFFER_BYTES = 4 << 20;

function bind(sock: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => reject(err);
    sock.once('error', fail);
    sock.bind({ port, address, exclusive: true }, () => {
      sock.off('error', fail);
      resolve();
    });
  });
}

export function createSpaSocket(opts: SpaSocketOptions): SpaSocket {
  const log = opts.logger;
  const sockets: Socket[] = [];
  let closing = false;
  return {
    async start(onDatagram, onEnd) {
      const rec: SpaDatagram = { src: '', payload: new Uint8Array(0), ts: 0, readAt: 0, parsedAt: 0 };
      const open = async (type: 'udp4' | 'udp6', address: string): Promise<void> => {
        const sock = createSocket({ type, ...(type === 'udp6' ? { ipv6Only: true } : {}), recvBufferSize: RECV_BUFFER_BYTES });
        try {
          await bind(sock, opts.port, address);
        } catch (err) {
          sock.close();
          const e = err as NodeJS.ErrnoException;
          // A host without IPv6 (disabled, or no address at all) still takes SPA over IPv4.
          if (type === 'udp6' && (e.code === 'EAFNOSUPPORT' || e.code === 'EADDRNOTAVAIL')) {
            log.warn({ event: 'spa.no_ipv6', port: opts.port, code: e.code }, `SPA over IPv6 is off: cannot bind [${address}]:${opts.port} (${e.code})`);
            return;
          }
          const why = e.code === 'EADDRINUSE' ? ' (in use: is fwknopd or another knockgw running?)' : '';
          throw kgwError('KGW_CAPTURE_FAILED', `cannot bind the SPA port ${type === 'udp6' ? `[${address}]` : address}:${opts.port}/udp${why}: ${e.message}`, { port: opts.port, code: e.code }, err);
        }
        sock.on('message', (msg, rinfo) => {
          const now = wallNow();
          rec.src = rinfo.address;
          rec.payload = msg;
          rec.ts = now;
          rec.readAt = now;
          rec.parsedAt = now;
          onDatagram(rec);
        });
        sock.on('error', (err) => {
          if (!closing) onEnd(kgwError('KGW_CAPTURE_FAILED', `the SPA socket on ${opts.port}/udp failed: ${err.message}`, { port: opts.port }, err));
        });
        sockets.push(sock);
      };
      await open('udp4', opts.bind4 ?? '0.0.0.0');
      await open('udp6', opts.bind6 ?? '::');
      log.info({ event: 'spa.listen', port: opts.port, families: sockets.map((s) => s.address().family) }, `SPA packets arrive on ${opts.port}/udp (a socket behind the kernel intake)`);
    },
    async close() {
      closing = true;
      await Promise.all(sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
