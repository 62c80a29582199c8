// State that outlives a process: the GrantStore port (memory + state file, Redis), the NonceStore
// port's file, and knockd's one_time_sequences file.
export { GrantSchema } from './grant-cache.ts';
export { createMemoryStore, readStateFile } from './memory.ts';
export type { CorruptStateFile } from './memory.ts';
export { createFileNonceStore } from './nonces-file.ts';
export { loadOneTimeSequences, markOneTimeSequenceUsed, oneTimePorts, parseOneTimeSequences } from './one-time-sequences.ts';
export { generation } from './redis/generation.ts';
export { createRedisStore } from './redis/store.ts';
export type { RedisStore } from './redis/store.ts';
export { createRedisFleetRoster } from './redis/fleet.ts';
