// npm run chaos -- --minutes N --seed S [--max-staleness S] [--record FILE]
// Runs the fault-injection harness (drive.ts) as root and prints the checker's figures; exits 1
// when an invariant broke (a lost or zombie grant), 64 on bad arguments.
import { parseArgs } from 'node:util';
import { runChaos } from './drive.ts';
import { formatFigures } from './report.ts';

const USAGE = 'usage: npm run chaos -- --minutes N --seed S [--max-staleness SECONDS] [--record FILE]   (N > 0, S an integer ≥ 0; as root)';

function usage(why: string): never {
  process.stderr.write(`chaos: ${why}\n${USAGE}\n`);
  process.exit(64);
}

function number(name: string, text: string | undefined, min: number, integer: boolean): number {
  if (text === undefined) return usage(`--${name} is required`);
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) usage(`--${name} must be ${integer ? 'an integer' : 'a number'} ≥ ${min}, not "${text}"`);
  return n;
}

let values: { minutes?: string; seed?: string; 'max-staleness'?: string; record?: string };
try {
  ({ values } = parseArgs({ options: { minutes: { type: 'string' }, seed: { type: 'string' }, 'max-staleness': { type: 'string' }, record: { type: 'string' } }, strict: true, allowPositionals: false }));
} catch (err) {
  usage((err as Error).message);
}
const minutes = number('minutes', values.minutes, 0.1, false);
const seed = number('seed', values.seed, 0, true);
const maxStalenessS = values['max-staleness'] === undefined ? 4 : number('max-staleness', values['max-staleness'], 2, true);
if (process.getuid?.() !== 0) {
  process.stderr.write('chaos: needs root (network namespaces, nft, tc); run it as root, e.g. sudo npm run chaos -- …\n');
  process.exit(1);
}

const result = await runChaos({ seconds: Math.round(minutes * 60), seed, maxStalenessS, ...(values.record ? { recordTo: values.record } : {}), log: (l) => process.stderr.write(`[chaos] ${l}\n`) });
process.stdout.write(formatFigures(result));
process.exit(result.lost.length === 0 && result.zombies.length === 0 ? 0 : 1);
