// The YAML config: parsed with line numbers kept, checked against the zod schema, every issue
// turned into `file:line: what is wrong` (with a "did you mean" for misspelt keys).
import { isMap, isNode, isPair, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { kgwError } from '../core/errors.ts';
import type { Door, KnockSequence } from '../core/types.ts';
import { knownKeysAt, yamlConfigSchema } from './schema.ts';
import { addSpa, compileYamlSpa } from './spa-config.ts';
import type { Config } from './types.ts';
import { metricsListen } from './schema-metrics.ts';
import { base, DEFAULTS, uniquePorts, type Mutable } from './draft.ts';

export function pathText(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : `${i ? '.' : ''}${String(k)}`)).join('') || '(top level)';
}

function lineOf(doc: Document, lc: LineCounter, path: readonly PropertyKey[], key?: string): number {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n) as (string | number)[], true);
    if (key !== undefined && n === path.length && isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
      if (pair && isNode(pair.key) && pair.key.range) return lc.linePos(pair.key.range[0]).line;
    }
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return 1;
}

function closest(word: string, options: readonly string[]): string | undefined {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      let prev = d[0] ?? 0;
      d[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const cur = d[j] ?? 0;
        d[j] = Math.min(cur + 1, (d[j - 1] ?? 0) + 1, prev + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
        prev = cur;
      }
    }
    return d[b.length] ?? Infinity;
  };
  const best = options.map((o) => ({ o, d: dist(word, o) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(2, Math.floor(word.length / 3)) ? best.o : undefined;
}

function yamlIssues(doc: Document, lc: LineCounter, path: string, issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(issue.path);
      for (const key of issue.keys) {
        const guess = closest(key, known);
        lines.push(`${path}:${lineOf(doc, lc, issue.path, key)}: unknown key "${key}" in ${pathText(issue.path)}${guess ? ` (did you mean "${guess}"?)` : ''}; known keys: ${known.join(', ')}`);
      }
    } else {
      lines.push(`${path}:${lineOf(doc, lc, issue.path)}: ${pathText(issue.path)}: ${issue.message}`);
    }
  }
  return lines;
}

// zod's defaults ("expected array, received undefined") read poorly in a config error.
function typeMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'invalid_type') return undefined;
  if (issue.input === undefined) return 'is required';
  const got = JSON.stringify(issue.input) ?? typeof issue.input;
  if (issue.expected === 'int') return `must be a whole number, not ${got}`;
  return `must be ${issue.expected === 'array' ? 'a list' : issue.expected === 'object' ? 'a mapping' : `a ${issue.expected}`}, not ${got}`;
}

function parseYaml(text: string, path: string): z.output<typeof yamlConfigSchema> & { origins: (p: readonly PropertyKey[]) => string } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const line = lc.linePos(syntax.pos[0]).line;
    throw kgwError('KGW_CONFIG_INVALID', `${path}:${line}: YAML syntax error: ${syntax.message.split('\n')[0] ?? syntax.code}`, { file: path, line });
  }
  let data: unknown;
  try {
    // A "billion laughs" document expands aliases without bound: yaml stops it past this count.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw kgwError('KGW_CONFIG_INVALID', `${path}:1: the YAML cannot be expanded (${err instanceof Error ? err.message : String(err)}); a config needs no more than a few aliases`, { file: path, line: 1 });
  }
  if (data === null || data === undefined) {
    throw kgwError('KGW_CONFIG_INVALID', `${path}:1: the file is empty; expected a mapping with at least "doors:" (see the README's config example)`, { file: path, line: 1 });
  }
  const parsed = yamlConfigSchema.safeParse(data, { error: typeMessage });
  if (!parsed.success) {
    const lines = yamlIssues(doc, lc, path, parsed.error.issues);
    throw kgwError('KGW_CONFIG_INVALID', lines.slice(0, 8).join('\n'), { file: path, issues: lines });
  }
  return { ...parsed.data, origins: (p) => `${path}:${lineOf(doc, lc, p)}` };
}

export function fromYaml(text: string, path: string, hostname: string): Mutable<Config> {
  const y = parseYaml(text, path);
  const cfg = base({ kind: 'yaml', path }, y.nodeId ?? hostname);
  if (y.interface !== undefined) cfg.interfaces = typeof y.interface === 'string' ? [y.interface] : y.interface;
  if (y.engine) cfg.engine = y.engine;
  if (y.firewall) cfg.firewall = y.firewall;
  if (y.store) cfg.store = y.store;
  if (y.stateFile) cfg.stateFile = y.stateFile;
  if (y.control) cfg.control = y.control;
  if (y.metrics) cfg.metrics = metricsListen(y.metrics);
  cfg.log = {
    level: y.log?.level ?? DEFAULTS.log.level,
    format: y.log?.format ?? DEFAULTS.log.format,
    ...(y.log?.file ? { file: y.log.file } : {}),
  };
  if (y.knockRateLimit) cfg.knockRateLimit = y.knockRateLimit;
  if (y.maxTrackedSources) cfg.maxTrackedSources = y.maxTrackedSources;
  if (y.ha) cfg.maxStalenessS = y.ha.maxStaleness;
  if (y.relay) {
    const { keysFile, listen, trustedProxies, publicUrls, tls, devicesFile } = y.relay;
    cfg.relay = {
      keysFile,
      ...(listen !== undefined ? { listen } : {}),
      ...(trustedProxies !== undefined ? { trustedProxies } : {}),
      ...(publicUrls !== undefined ? { publicUrls: { ...(publicUrls.v4 ? { v4: publicUrls.v4 } : {}), ...(publicUrls.v6 ? { v6: publicUrls.v6 } : {}) } } : {}),
      ...(tls !== undefined ? { tls } : {}),
      ...(devicesFile !== undefined ? { devicesFile } : {}),
    };
  }
  const { aws, gcp } = y.cloud ?? {};
  cfg.cloud = {
    ...(aws ? { aws: { region: aws.region, securityGroupIds: aws.securityGroupIds, mode: aws.mode, ...(aws.prefixListId ? { prefixListId: aws.prefixListId } : {}), ...(aws.prefixListIdV6 ? { prefixListIdV6: aws.prefixListIdV6 } : {}), ...(aws.endpoint ? { endpoint: aws.endpoint } : {}) } } : {}),
    ...(gcp ? { gcp: { project: gcp.project, network: gcp.network, targetTags: gcp.targetTags, targetServiceAccounts: gcp.targetServiceAccounts, priority: gcp.priority, mode: gcp.mode, ...(gcp.endpoint ? { endpoint: gcp.endpoint } : {}) } } : {}),
  };
  const doors: Door[] = [];
  const sequences: KnockSequence[] = [];
  (y.doors ?? []).forEach((d, i) => {
    doors.push({ name: d.name, open: uniquePorts(d.open), ttlMs: d.ttl * 1000, ...(d.scope ? { scope: Object.freeze({ ...(d.scope.v4 !== undefined ? { v4: d.scope.v4 } : {}), ...(d.scope.v6 !== undefined ? { v6: d.scope.v6 } : {}) }) } : {}) });
    const common = { door: d.name, timeoutMs: d.seqTimeout * 1000, tcpFlags: d.tcpFlags };
    sequences.push({ ...common, id: d.name, ports: d.sequence, action: { kind: 'open' }, origin: y.origins(['doors', i, 'sequence']) });
    if (d.closeSequence) {
      sequences.push({ ...common, id: `${d.name}:close`, ports: d.closeSequence, action: { kind: 'close' }, origin: y.origins(['doors', i, 'closeSequence']) });
    }
  });
  cfg.doors = doors;
  cfg.sequences = sequences;
  cfg.protectedPorts = uniquePorts(doors.flatMap((d) => d.open));
  if (y.spa) addSpa(cfg, compileYamlSpa(y.spa, path, y.origins));
  return cfg;
}

