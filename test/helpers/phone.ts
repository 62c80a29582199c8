// Helpers of the phone e2e test: a connect prober inside a namespace (when did the port open?),
// a percentile, and in-page checks the test runs with the page's own stored key.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Page } from 'playwright-core';
import type { Host } from './netns.ts';

/** Connect attempts every few ms from `host` until addr:port answers; resolves the time it did. */
export function prober(host: Host) {
  const code = `const net=require('net');require('readline').createInterface({input:process.stdin}).on('line',(l)=>{const [a,p,ms]=l.split(' ');const end=Date.now()+ +ms;`
    + `const go=()=>{if(Date.now()>end)return console.log(a+' timeout');const s=net.connect({host:a,port:+p});const k=setTimeout(()=>{s.destroy();go()},8);`
    + `s.on('connect',()=>{clearTimeout(k);s.destroy();console.log(a+' '+Date.now())});s.on('error',()=>{clearTimeout(k);setTimeout(go,1)})};go()})`;
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const waiting = new Map<string, (v: string) => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const [addr = '', at = ''] = line.split(' ');
    waiting.get(addr)?.(at);
    waiting.delete(addr);
  });
  return {
    open(addr: string, port: number, ms = 5000): Promise<number | undefined> {
      return new Promise((resolve) => {
        waiting.set(addr, (at) => resolve(at === 'timeout' ? undefined : Number(at)));
        child.stdin.write(`${addr} ${port} ${ms}\n`);
      });
    },
    close: () => child.kill('SIGKILL'),
  };
}

export const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

// Run in the page (plain JS: the test is type-checked without the DOM library).
const OTHER_DOOR_JS = `async (d) => {
  const db = await new Promise((res, rej) => { const r = indexedDB.open('knockgw', 1); r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); });
  const dev = await new Promise((res) => { const q = db.transaction('devices').objectStore('devices').getAll(); q.onsuccess = () => res(q.result[0]); });
  const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const ts = Math.floor(Date.now() / 1000);
  const algo = dev.alg === 'ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' };
  const sig = new Uint8Array(await crypto.subtle.sign(algo, dev.key, new TextEncoder().encode(['knockgw-v1', dev.client, d, '', String(ts), nonce].join('\\n'))));
  const r = await fetch('/v1/knock', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ v: 1, client: dev.client, door: d, ts, nonce, sig: btoa(String.fromCharCode(...sig)) }) });
  const j = await r.json();
  return j.error ? { status: r.status, code: j.error.code } : { status: r.status };
}`;

const REDEEM_JS = `async (tok) => {
  const k = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', k.publicKey));
  const r = await fetch('/v1/enroll', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ v: 1, token: tok, alg: 'ecdsa-p256', publicKey: btoa(String.fromCharCode(...raw)) }) });
  const j = await r.json();
  return j.error ? { status: r.status, code: j.error.code } : { status: r.status };
}`;

type Answer = { status: number; code?: string };

/** The page signs a knock for another door with its own stored key (the key never leaves it). */
export const knockOtherDoor = (page: Page, door: string): Promise<Answer> => page.evaluate<Answer>(`(${OTHER_DOOR_JS})(${JSON.stringify(door)})`);

/** POST /v1/enroll from the page with a fresh P-256 key and `token`. */
export const redeem = (page: Page, token: string): Promise<Answer> => page.evaluate<Answer>(`(${REDEEM_JS})(${JSON.stringify(token)})`);
