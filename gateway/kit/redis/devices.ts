// The device registry in Redis, shared by every relay and gateway node: tokens as
// `enroll:<sha256>` keys that expire by themselves and are consumed with GETDEL (exactly one of
// concurrent redemptions wins), devices as fields of one hash. Fails closed: a Redis that cannot
// answer is KGW_STORE_UNAVAILABLE, never an accepted token or an unknown device let through.
import { describeError, isKnockgwError, kgwError } from '../../core/errors.ts';
import { deviceSchema, newDeviceId, newToken, tokenHash, tokenRecordSchema, tokenRefused, type Device, type DeviceRegistry } from '../../protocol/devices.ts';
import type { RedisConnection } from './connection.ts';
import { keyspace, type KeySpace } from './keys.ts';

export const DEVICES_HASH = 'devices';
export const ENROLL_PREFIX = 'enroll:';

function parseDevice(text: string | null): Device | undefined {
  if (text === null) return undefined;
  try {
    const r = deviceSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export function createRedisDeviceRegistry(opts: { conn: RedisConnection; keys?: KeySpace }): DeviceRegistry {
  const key = opts.keys ?? keyspace();
  const redis = opts.conn.client;
  const guard = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (isKnockgwError(err)) throw err;
      throw kgwError('KGW_STORE_UNAVAILABLE', `cannot ${what} in Redis: ${describeError(err)}`, {}, err);
    }
  };
  return {
    issue: (req, nowMs) => guard('store the enrollment token', async () => {
      const token = newToken();
      const expiresAt = nowMs + req.ttlMs;
      const rec = { door: req.door, expiresAt, ...(req.name === undefined ? {} : { name: req.name }) };
      await redis.set(key(`${ENROLL_PREFIX}${tokenHash(token)}`), JSON.stringify(rec), 'PX', Math.max(1, req.ttlMs));
      return { token, expiresAt };
    }),
    redeem: (token, d, nowMs) => guard('redeem the enrollment token', async () => {
      const text = await redis.getdel(key(`${ENROLL_PREFIX}${tokenHash(token)}`));
      let rec;
      try {
        rec = text === null ? undefined : tokenRecordSchema.parse(JSON.parse(text));
      } catch {
        rec = undefined;
      }
      if (!rec || rec.expiresAt <= nowMs) throw tokenRefused();
      const device: Device = { id: newDeviceId(), name: rec.name ?? d.name ?? 'phone', door: rec.door, alg: d.alg, publicKey: d.publicKey, createdAt: nowMs, enrolledFrom: d.enrolledFrom };
      await redis.hset(key(DEVICES_HASH), device.id, JSON.stringify(device));
      return device;
    }),
    get: (id) => guard('look the device up', async () => parseDevice(await redis.hget(key(DEVICES_HASH), id))),
    list: () => guard('list the devices', async () => Object.values(await redis.hgetall(key(DEVICES_HASH))).map(parseDevice).filter((d): d is Device => d !== undefined)),
    revoke: (id) => guard('revoke the device', async () => (await redis.hdel(key(DEVICES_HASH), id)) === 1),
    close: () => Promise.resolve(),
  };
}
