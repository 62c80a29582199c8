// Key names. Everything of one deployment lives under `knockgw:{ns}:` — the braces are a cluster
// hash tag, so one namespace sits on one slot and the Lua scripts may touch all of its keys.
export type KeySpace = (suffix: string) => string;

export const DEFAULT_NAMESPACE = 'knockgw';

export function keyspace(ns: string = DEFAULT_NAMESPACE): KeySpace {
  return (suffix) => `knockgw:{${ns}}:${suffix}`;
}
