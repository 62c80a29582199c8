// The bench's command line, parsed without loading any phase: a bad argument is answered before
// the AWS/GCP SDKs and the lab are imported, and the parser is testable in-process.
import { parseArgs } from 'node:util';
import { kgwError } from '../gateway/core/errors.ts';

export const PHASES = ['knock', 'spa', 'scale', 'ha', 'cloud', 'relay', 'fleet'] as const;
export type Phase = (typeof PHASES)[number];
/** The fleet simulation runs only when asked for (--fleet): minutes of 2 cores for one question. */
const DEFAULT_PHASES = PHASES.filter((p) => p !== 'fleet');

export const USAGE = 'usage: npm run bench [-- --quick] [--only knock,spa,scale,ha,cloud,relay,fleet] [--fleet [--fleet-nodes 5,10,25,50]] [--runs N] [--flood-seconds S] [--flood-interval auto|uN] [--markdown FILE] [--trace]';

export interface BenchArgs {
  readonly quick: boolean;
  readonly only: readonly Phase[];
  readonly trace: boolean;
  readonly markdown: string | undefined;
  readonly runs: number;
  readonly floodSeconds: number;
  readonly floodInterval: string;
  readonly fleetLadder: readonly number[];
  readonly fleet: boolean;
}

const usage = (message: string): never => {
  throw kgwError('KGW_CLI_USAGE', message);
};

function count(name: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= max ? n : usage(`--${name} takes a whole number 1..${max} (got "${text}")`);
}

/** Throws KGW_CLI_USAGE naming the bad argument. */
export function parseBenchArgs(args: readonly string[]): BenchArgs {
  let values;
  try {
    values = parseArgs({
      args: [...args],
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        runs: { type: 'string' },
        'flood-seconds': { type: 'string' },
        'flood-interval': { type: 'string', default: 'auto' },
        markdown: { type: 'string' },
        fleet: { type: 'boolean', default: false },
        trace: { type: 'boolean', default: false },
        'fleet-nodes': { type: 'string' },
      },
    }).values;
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
  const quick = values.quick;
  const only = (values.only ?? (values.fleet ? 'fleet' : DEFAULT_PHASES.join(','))).split(',').map((p) => p.trim());
  for (const p of only) if (!(PHASES as readonly string[]).includes(p)) usage(`unknown bench phase "${p}" (phases: ${PHASES.join(', ')})`);
  return {
    quick,
    only: only as Phase[],
    trace: values.trace,
    markdown: values.markdown,
    fleet: values.fleet,
    runs: count('runs', values.runs, quick ? 10 : 50, 10_000),
    floodSeconds: count('flood-seconds', values['flood-seconds'], quick ? 4 : 10, 120),
    floodInterval: values['flood-interval'],
    fleetLadder: (values['fleet-nodes'] ?? (quick ? '5,50' : '5,10,25,50')).split(',').map((n) => count('fleet-nodes', n, 5, 500)),
  };
}
