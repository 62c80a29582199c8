// The Redis user a relay connects as. The gateways' Redis holds the grants every gateway applies,
// so the relay must not get the gateways' credential: its own user may claim nonces in the relay's
// scope (SET … NX PX) and append to the request stream (XADD), and nothing else — no read, no
// script, no other key. The deploy scripts print this rule, infra/README.md quotes it and a test
// applies it to a real redis-server; this file is the one place it is written.
//
// Redis ACLs restrict commands and keys, not arguments: the user could still send SET without NX
// or XADD without MAXLEN on those two key ranges. That costs memory (denial of service), never a
// grant: the gateway verifies every request again and claims nonces in a scope this user cannot
// write. Plain `~` patterns (not Redis 7's `%W~`) keep the rule valid on Redis 6 and in
// ElastiCache access strings; with only SET and XADD allowed they grant no reads anyway.
import { RELAY_NONCE_SCOPE } from '../../protocol/relay-v1.ts';
import { DEFAULT_NAMESPACE, keyspace } from './keys.ts';
import { nonceKeyPrefix } from './nonces.ts';
import { REQUESTS_STREAM } from './requests.ts';
import { DEVICES_HASH, ENROLL_PREFIX } from './devices.ts';

export const RELAY_REDIS_USER = 'knockgw-relay';

export interface RelayAclOptions {
  /** The ACL user name (default knockgw-relay). */
  readonly user?: string;
  /** The gateways' key namespace (default knockgw). */
  readonly namespace?: string;
  /** The database the relay's URL selects; a non-zero one needs SELECT (patterns hold in every database). */
  readonly db?: number;
  /**
   * Phone enrollment through this relay: also GETDEL on enrollment tokens (kept by hash) and
   * HGET/HSET on the devices hash. With it, a compromised relay could add a device of its own to
   * the registry (and so open doors): enable it only on a relay you trust as much as the gateway.
   */
  readonly enroll?: boolean;
}

export interface RelayAcl {
  readonly user: string;
  /** Redis glob patterns of the only keys the user may touch. */
  readonly keyPatterns: readonly string[];
  readonly commands: readonly string[];
  /** The rules without a password: an ElastiCache/MemoryDB access string (passwords go in their own parameter). */
  readonly accessString: string;
  /** `ACL SETUSER` arguments; re-applying them replaces whatever the user had (password, keys, commands). */
  setUserArgs(passwordSha256Hex: string): string[];
  /** The same as a line for redis.conf or an aclfile. */
  aclFileLine(passwordSha256Hex: string): string;
}

/** Escapes Redis glob metacharacters so a literal part of a pattern matches only itself. */
export function globEscape(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

export function relayAcl(opts: RelayAclOptions = {}): RelayAcl {
  const user = opts.user ?? RELAY_REDIS_USER;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(user)) throw new RangeError(`Redis ACL user "${user}" must be 1-64 letters, digits, ".", "_" or "-"`);
  const keys = keyspace(opts.namespace ?? DEFAULT_NAMESPACE);
  const enroll = opts.enroll ? [`${globEscape(keys(ENROLL_PREFIX))}*`, globEscape(keys(DEVICES_HASH))] : [];
  const keyPatterns = [`${globEscape(nonceKeyPrefix(keys, RELAY_NONCE_SCOPE))}*`, globEscape(REQUESTS_STREAM), ...enroll];
  const commands = ['set', 'xadd', ...(opts.enroll ? ['getdel', 'hget', 'hset'] : []), ...(opts.db ? ['select'] : [])];
  const rules = [...keyPatterns.map((p) => `~${p}`), '-@all', ...commands.map((c) => `+${c}`)];
  const setUserArgs = (hash: string): string[] => {
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new RangeError('the password hash must be 64 lowercase hex characters (SHA-256)');
    // resetpass/resetkeys first: applied to an existing user, nothing it had before survives.
    return [user, 'on', 'resetpass', `#${hash}`, 'resetkeys', ...rules];
  };
  return {
    user,
    keyPatterns,
    commands,
    accessString: ['on', ...rules].join(' '),
    setUserArgs,
    aclFileLine: (hash) => `user ${setUserArgs(hash).join(' ')}`,
  };
}
