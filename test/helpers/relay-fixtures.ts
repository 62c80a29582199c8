// Shared fixtures for the relay tests: a keys file with one client per kind, their signers, a
// fixed clock and a tiny in-memory NonceStore (the real ones live in gateway/kit).
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Proof } from '../../gateway/core/types.ts';
import { pino } from 'pino';
import { keygen } from '../../gateway/client/keygen.ts';
import type { Logger, NonceStore, ProofSource } from '../../gateway/ports.ts';
import { compileKeys, parsePrivateKeyFile, signKnock, type ClientSigner, type KnockBody, type RelayKeys } from '../../gateway/protocol/relay-v1.ts';

export const NOW_MS = 1_790_000_000_000;

export function fixedClock(ms = NOW_MS): { now(): number; set(v: number): void } {
  let t = ms;
  return { now: () => t, set: (v) => { t = v; } };
}

export function memoryNonces(): NonceStore & { claims: number } {
  const seen = new Map<string, number>();
  const store = {
    claims: 0,
    claim(scope: string, nonce: string, ttlMs: number): Promise<boolean> {
      store.claims++;
      const key = `${scope}\0${nonce}`;
      const now = Date.now();
      const exp = seen.get(key);
      if (exp !== undefined && exp > now) return Promise.resolve(false);
      seen.set(key, now + ttlMs);
      return Promise.resolve(true);
    },
  };
  return store;
}

export interface Identities {
  readonly keys: RelayKeys;
  /** hmac-sha256, door openSSH */
  readonly alice: ClientSigner;
  /** ed25519, door openSSH */
  readonly bob: ClientSigner;
  /** ed25519, doors openSSH + openWeb, may name another IP */
  readonly carol: ClientSigner;
  readonly aliceKeyFile: string;
  readonly bobKeyFile: string;
  readonly keysFileText: string;
}

export function identities(): Identities {
  const a = keygen({ id: 'alice-phone', alg: 'hmac-sha256', doors: ['openSSH'] });
  const b = keygen({ id: 'bob', alg: 'ed25519', doors: ['openSSH'] });
  const c = keygen({ id: 'carol', alg: 'ed25519', doors: ['openSSH', 'openWeb'], allowIp: true });
  const file = { clients: [a.keysEntry, b.keysEntry, c.keysEntry] };
  return {
    keys: compileKeys(file),
    alice: parsePrivateKeyFile(a.privateKeyFile, 'alice'),
    bob: parsePrivateKeyFile(b.privateKeyFile, 'bob'),
    carol: parsePrivateKeyFile(c.privateKeyFile, 'carol'),
    aliceKeyFile: a.privateKeyFile,
    bobKeyFile: b.privateKeyFile,
    keysFileText: JSON.stringify(file),
  };
}

export function knock(signer: ClientSigner, over: { door?: string; ip?: string; ts?: number; nonce?: string } = {}): KnockBody {
  return signKnock(signer, {
    door: over.door ?? 'openSSH',
    ts: over.ts ?? Math.floor(NOW_MS / 1000),
    nonce: over.nonce ?? randomBytes(16).toString('base64'),
    ...(over.ip === undefined ? {} : { ip: over.ip }),
  });
}

/** A logger whose events tests read back as objects. */
export function captureLog(): { log: Logger; events: Record<string, unknown>[] } {
  const events: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) events.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, dest), events };
}

export interface OpenedDoor { readonly door: string; readonly ip: string; readonly source: 'relay' }

/** Starts proof sources with an intake that records what each proof would open. */
export async function collectOpens(sources: readonly ProofSource[], submit?: (p: Proof) => Promise<void>): Promise<{ opened: OpenedDoor[]; denied: string[]; stop(): Promise<void> }> {
  const opened: OpenedDoor[] = [];
  const denied: string[] = [];
  const ctx = {
    submit: async (p: Proof) => {
      if (submit) await submit(p);
      else if (p.kind === 'relay') opened.push({ door: p.door, ip: p.ip, source: 'relay' });
    },
    fail: (err: unknown) => { throw err; },
    deny: (reason: string) => { denied.push(reason); },
  };
  for (const s of sources) await s.start(ctx);
  return { opened, denied, stop: async () => { for (const s of sources) await s.stop(); } };
}
