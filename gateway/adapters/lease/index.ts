// The LeaderLease port (ports.ts): a Redis lease for HA, or the single node that always leads.
export { createRedisLease } from './redis.ts';
export { createSingleLease } from './single.ts';
