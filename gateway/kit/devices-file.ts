// The device registry of one host: a JSON file (`relay.devicesFile`), or memory only without one.
// One process owns it (the daemon; `knockgw enroll|devices` go through its control socket), so a
// promise chain serializes every change and each change is written whole (temp file + rename,
// mode 0600) before it is answered.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { describeError, kgwError } from '../core/errors.ts';
import { deviceSchema, newDeviceId, newToken, tokenHash, tokenRecordSchema, tokenRefused, type Device, type DeviceRegistry, type TokenRecord } from '../protocol/devices.ts';

const fileSchema = z.object({
  v: z.literal(1),
  devices: z.array(deviceSchema),
  /** sha256 → token record; expired ones are dropped on the next write. */
  tokens: z.record(z.string(), tokenRecordSchema),
});
type DevicesFile = z.infer<typeof fileSchema>;

async function load(path: string | undefined): Promise<DevicesFile> {
  const empty: DevicesFile = { v: 1, devices: [], tokens: {} };
  if (!path) return empty;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty;
    throw kgwError('KGW_CONFIG_READ', `cannot read the devices file ${path}: ${describeError(err)}`, { path }, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) throw kgwError('KGW_CONFIG_INVALID', `the devices file ${path} is not a knockgw devices file (v1); move it away to start empty`, { path });
  return parsed.data;
}

export async function createFileDeviceRegistry(opts: { path?: string }): Promise<DeviceRegistry> {
  const { path } = opts;
  let state = await load(path);
  let chain: Promise<unknown> = Promise.resolve();
  const serialized = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };
  const save = async (next: DevicesFile, nowMs: number): Promise<void> => {
    const tokens = Object.fromEntries(Object.entries(next.tokens).filter(([, t]) => t.expiresAt > nowMs));
    const out = { ...next, tokens };
    if (path) {
      const tmp = `${path}.${process.pid}.tmp`;
      try {
        await writeFile(tmp, `${JSON.stringify(out, null, 2)}\n`, { mode: 0o600 });
        await rename(tmp, path);
      } catch (err) {
        throw kgwError('KGW_STATE_FILE', `cannot write the devices file ${path}: ${describeError(err)}`, { path }, err);
      }
    }
    state = out;
  };
  return {
    issue: (req, nowMs) => serialized(async () => {
      const token = newToken();
      const expiresAt = nowMs + req.ttlMs;
      const rec: TokenRecord = { door: req.door, expiresAt, ...(req.name === undefined ? {} : { name: req.name }) };
      await save({ ...state, tokens: { ...state.tokens, [tokenHash(token)]: rec } }, nowMs);
      return { token, expiresAt };
    }),
    redeem: (token, d, nowMs) => serialized(async () => {
      const h = tokenHash(token);
      const rec = state.tokens[h];
      if (!rec || rec.expiresAt <= nowMs) throw tokenRefused();
      const device: Device = { id: newDeviceId(), name: rec.name ?? d.name ?? 'phone', door: rec.door, alg: d.alg, publicKey: d.publicKey, createdAt: nowMs, enrolledFrom: d.enrolledFrom };
      const tokens = { ...state.tokens };
      delete tokens[h];
      await save({ ...state, tokens, devices: [...state.devices, device] }, nowMs);
      return device;
    }),
    get: (id) => Promise.resolve(state.devices.find((d) => d.id === id)),
    list: () => Promise.resolve([...state.devices]),
    revoke: (id) => serialized(async () => {
      if (!state.devices.some((d) => d.id === id)) return false;
      await save({ ...state, devices: state.devices.filter((d) => d.id !== id) }, Date.now());
      return true;
    }),
    close: () => chain.then(() => undefined),
  };
}
