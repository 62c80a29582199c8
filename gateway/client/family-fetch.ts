// A fetch that reaches its URL over one address family only (node:http/https with `family`), so a
// relay knock leaves over the same family as the connection it is meant to open. Enough of fetch
// for relayKnock: method, headers, a string body, a signal; the answer's status and body.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export function familyFetch(family: 4 | 6): typeof fetch {
  return (input, init) => new Promise<Response>((resolve, reject) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const req = send(url, { method: init?.method ?? 'GET', headers, family, signal: init?.signal ?? undefined }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500 })));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(typeof init?.body === 'string' ? init.body : undefined);
  });
}
