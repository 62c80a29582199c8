// What users write in the YAML config, as a zod schema (the port and flag notations it shares with
// knockd.conf are parsed in core/port-spec.ts). Every object is strict: a misspelt key must be an error,
// never a silently ignored line that leaves a door or a limit at its default.
import { z } from 'zod';
import { MAX_TIMEOUT_S, STALENESS_S, stalenessRange } from '../core/timers.ts';
import { KNOCK_STATE_BUDGET_BYTES, knockStateBytes } from '../core/knock-state.ts';
import type { PortSpec } from '../core/grant.ts';
import { TCP } from '../core/types.ts';
import { checkOpenSpec, checkPortSpec, checkTcpFlags, MAX_SEQUENCE_LENGTH, sameSequence } from '../core/port-spec.ts';
import { spaAccessSchema, spaSchema } from './schema-spa.ts';
import { relaySchema, scopeSchema } from './schema-relay.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const nameSchema = (what: string) =>
  z.string().regex(NAME, `${what} must be 1-63 characters: letters, digits, "_", "." or "-", starting with a letter or digit`);

const absolutePath = z.string().refine((s) => s.startsWith('/') && !s.includes('\0'), 'must be an absolute path (starting with "/")');

const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL');

const knockPort = z.union([z.number(), z.string()], 'must be a knock port such as 7000 or "9000:udp"').transform((v, ctx) => {
  const r = checkPortSpec(String(v));
  if (typeof r === 'string') {
    ctx.addIssue({ code: 'custom', message: r });
    return z.NEVER;
  }
  return r;
});

const openPort = z.union([z.number(), z.string()], 'must be a port to open such as "22/tcp"').transform((v, ctx) => {
  const r = checkOpenSpec(String(v));
  if (typeof r === 'string') {
    ctx.addIssue({ code: 'custom', message: r });
    return z.NEVER;
  }
  return r;
});

const tcpFlags = z.string().transform((v, ctx) => {
  const r = checkTcpFlags(v);
  if (typeof r === 'string') {
    ctx.addIssue({ code: 'custom', message: r });
    return z.NEVER;
  }
  return r;
});

const sequence = z.array(knockPort).min(1, 'a sequence needs at least one port').max(MAX_SEQUENCE_LENGTH, `a sequence has at most ${MAX_SEQUENCE_LENGTH} ports (knockd's limit)`);

const doorSchema = z.strictObject({
  name: nameSchema('a door name'),
  sequence,
  /** Seconds from the first knock; knockd's default. */
  seqTimeout: z.number().int().min(1).max(3600).default(25),
  /** A knock client sends SYNs; matching only those keeps unrelated traffic from resetting a knock. */
  tcpFlags: tcpFlags.default({ require: TCP.SYN, forbid: 0 }),
  open: z.array(openPort).min(1, 'a door must open at least one port').default([{ port: 22, proto: 'tcp' }]),
  /** Seconds; 0 = until the close sequence. An hour by default, so a forgotten close does not leave a door open for good. */
  ttl: z.number().int().min(0).max(MAX_TIMEOUT_S, `must be at most ${MAX_TIMEOUT_S} s (about 24.8 days: what ipset and Node timers can hold); use 0 for "until closed"`).default(3600),
  closeSequence: sequence.optional(),
  /** How much of the knocking client's network a grant covers (schema-relay.ts). */
  scope: scopeSchema.optional(),
});

const ifname = z.string().regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'must be a network interface name (e.g. eth0, at most 15 characters)');

const storeSchema = z.string().refine(
  (s) => s === 'memory' || /^redis(s|\+sentinel)?:\/\/\S+$/.test(s) || (s.startsWith('/') && !/\s/.test(s)),
  'must be "memory", a redis:// or rediss:// URL, or the absolute path of a Redis unix socket',
);

const prefixListId = z.string().regex(/^pl-([0-9a-f]{8}|[0-9a-f]{17})$/, 'must be a managed prefix list id such as pl-0123456789abcdef0');

const awsSchema = z
  .strictObject({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, 'must be an AWS region such as eu-west-1'),
    securityGroupIds: z.array(z.string().regex(/^sg-([0-9a-f]{8}|[0-9a-f]{17})$/, 'must be a security group id such as sg-0123456789abcdef0')).min(1),
    mode: z.enum(['rules', 'prefix-list']).default('rules'),
    prefixListId: prefixListId.optional(),
    /** A prefix list holds one family: IPv6 grants need their own. */
    prefixListIdV6: prefixListId.optional(),
    endpoint: httpUrl.optional(),
  })
  .superRefine((v, ctx) => {
    if (v.mode === 'prefix-list' && v.prefixListId === undefined && v.prefixListIdV6 === undefined) {
      ctx.addIssue({ code: 'custom', path: ['prefixListId'], message: 'mode prefix-list needs prefixListId (IPv4) and/or prefixListIdV6 (IPv6): the managed prefix lists the security groups reference' });
    }
  });

const gcpSchema = z
  .strictObject({
    project: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a GCP project id such as my-proj-123'),
    network: z.string().regex(/^\S+$/, 'must be a VPC network name or URL').default('default'),
    targetTags: z.array(z.string().regex(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a network tag (lowercase letters, digits, "-")')).default([]),
    targetServiceAccounts: z.array(z.email()).default([]),
    /** Lower wins in GCP; below the usual 1000 so a typical "deny ssh" rule at 1000 does not shadow grants. */
    priority: z.number().int().min(0).max(65535).default(900),
    /** aggregated keeps the project's firewall-rule quota for everyone else; per-grant names each person. */
    mode: z.enum(['aggregated', 'per-grant']).default('aggregated'),
    endpoint: httpUrl.optional(),
  })
  .superRefine((v, ctx) => {
    const tags = v.targetTags.length > 0;
    const sas = v.targetServiceAccounts.length > 0;
    if (tags === sas) {
      ctx.addIssue({
        code: 'custom',
        path: ['targetTags'],
        message: tags
          ? 'GCP firewall rules take targetTags or targetServiceAccounts, not both: keep one'
          : "set targetTags (or targetServiceAccounts) so grants apply only to the gateway's instances, not the whole network",
      });
    }
  });

export const yamlConfigSchema = z
  .strictObject({
    interface: z.union([ifname, z.array(ifname).min(1)], 'must be an interface name or a list of them (e.g. eth0 or [eth0, eth1])').optional(),
    engine: z.enum(['auto', 'kernel', 'pcap']).optional(),
    firewall: z.enum(['nftables', 'iptables', 'none']).optional(),
    store: storeSchema.optional(),
    stateFile: absolutePath.optional(),
    nodeId: nameSchema('nodeId').optional(),
    /** Optional when spa: defines SPA doors. */
    doors: z.array(doorSchema).min(1, 'define at least one door').optional(),
    cloud: z.strictObject({ aws: awsSchema.optional(), gcp: gcpSchema.optional() }).optional(),
    relay: relaySchema(absolutePath, httpUrl).optional(),
    control: absolutePath.optional(),
    log: z
      .strictObject({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error']).optional(),
        format: z.enum(['json', 'pretty']).optional(),
        file: absolutePath.optional(),
      })
      .optional(),
    knockRateLimit: z.strictObject({ perSecond: z.number().int().min(1).max(1_000_000), burst: z.number().int().min(1).max(1_000_000) }).optional(),
    maxTrackedSources: z.number().int().min(16).max(16_777_216).optional(),
    ha: z.strictObject({ maxStaleness: z.number(`must be ${stalenessRange()}`).int(`must be ${stalenessRange()}`).min(STALENESS_S.min, `must be ${stalenessRange()}`).max(MAX_TIMEOUT_S, `must be ${stalenessRange()}`) }).optional(),
    spa: spaSchema(spaAccessSchema(openPort, nameSchema('an SPA door name'))).optional(),
  })
  .superRefine((cfg, ctx) => {
    if (cfg.doors === undefined && cfg.spa === undefined) ctx.addIssue({ code: 'custom', path: ['doors'], message: 'define at least one door (doors:) or SPA door (spa.access:)' });
    const seen = new Map<string, number>();
    const sequences: { where: string; path: (string | number)[]; ports: readonly PortSpec[] }[] = [];
    cfg.spa?.access.forEach((a, i) => {
      // Grants are keyed by door name: an SPA door and a knock door must not share one.
      if (cfg.doors?.some((d) => d.name === a.name) || cfg.spa?.access.slice(0, i).some((o) => o.name === a.name)) {
        ctx.addIssue({ code: 'custom', path: ['spa', 'access', i, 'name'], message: `door name "${a.name}" is already used` });
      }
    });
    cfg.doors?.forEach((d, i) => {
      const first = seen.get(d.name);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['doors', i, 'name'], message: `door name "${d.name}" is already used by doors[${first}]` });
      else seen.set(d.name, i);
      sequences.push({ where: `the sequence of door "${d.name}"`, path: ['doors', i, 'sequence'], ports: d.sequence });
      if (d.closeSequence) sequences.push({ where: `the closeSequence of door "${d.name}"`, path: ['doors', i, 'closeSequence'], ports: d.closeSequence });
    });
    // Schema-valid sizes can still exhaust the heap under a flood: the budget is what counts.
    const maxTracked = cfg.maxTrackedSources;
    if (maxTracked !== undefined && knockStateBytes(sequences.length, maxTracked) > KNOCK_STATE_BUDGET_BYTES) {
      const mib = (b: number): string => `${Math.round(b / 2 ** 20)} MiB`;
      const most = Math.floor(KNOCK_STATE_BUDGET_BYTES / knockStateBytes(sequences.length, 1));
      ctx.addIssue({ code: 'custom', path: ['maxTrackedSources'], message: `maxTrackedSources ${maxTracked} with ${sequences.length} sequence(s) needs up to ${mib(knockStateBytes(sequences.length, maxTracked))} of knock state under a flood, over the ${mib(KNOCK_STATE_BUDGET_BYTES)} budget; use at most ${most}` });
    }
    // One knock completing two sequences would open and close at once, or open two doors.
    sequences.forEach((s, i) => {
      const other = sequences.slice(0, i).find((o) => sameSequence(o.ports, s.ports));
      if (other) ctx.addIssue({ code: 'custom', path: s.path, message: `this sequence is the same as ${other.where}: make every sequence unique` });
    });
  });

export type YamlConfig = z.output<typeof yamlConfigSchema>;

type Walkable = z.ZodType;

function step(schema: Walkable, key: string | number | undefined): Walkable | undefined {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault || schema instanceof z.ZodNullable || schema instanceof z.ZodPrefault) {
    return step(schema.unwrap() as Walkable, key);
  }
  if (schema instanceof z.ZodPipe) return step(schema.in as Walkable, key);
  if (key === undefined) return schema;
  if (schema instanceof z.ZodObject) return typeof key === 'string' ? (schema.shape as Record<string, Walkable>)[key] : undefined;
  if (schema instanceof z.ZodArray) return typeof key === 'number' ? (schema.element as Walkable) : undefined;
  if (schema instanceof z.ZodUnion) {
    for (const o of schema.options as readonly Walkable[]) {
      const found = step(o, key);
      if (found) return found;
    }
  }
  return undefined;
}

/** The keys the YAML schema accepts in the mapping at `path` (for "did you mean" hints). */
export function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let s: Walkable | undefined = yamlConfigSchema;
  for (const k of path) s = s && (typeof k === 'string' || typeof k === 'number') ? step(s, k) : undefined;
  const obj = s && step(s, undefined);
  return obj instanceof z.ZodObject ? Object.keys(obj.shape) : [];
}
