// How the deploy scripts run aws/gcloud: as argv arrays (no shell, nothing to quote wrong), with
// secrets passed through stdin or a private temporary file, never on a command line. The dry run
// executes nothing: it records every command (secrets as placeholders) and answers with what a
// fresh account would, so tests and operators see the full plan without credentials.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { kgwError } from '../../gateway/core/errors.ts';

/** A secret's value and the placeholder that stands for it in plans and logs. */
export interface Secret {
  readonly label: string;
  readonly value: string;
}

export interface RunOptions {
  /** Written to the command's stdin (gcloud --data-file=-). */
  readonly stdin?: Secret;
  /** Exit codes that are answers, not failures (e.g. "not found" of a describe). */
  readonly okCodes?: readonly number[];
  /** Why the step exists, shown in the plan. */
  readonly why?: string;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
}

export interface PlannedStep {
  readonly argv: readonly string[];
  readonly why?: string;
  /** The secret sent on stdin, by label only. */
  readonly stdin?: string;
}

export interface Runner {
  readonly dryRun: boolean;
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Every command, in order (both modes). */
  readonly steps: PlannedStep[];
}

/**
 * Shell-quotes one word for display (plans, logs); commands never go through a shell. A word
 * that holds a secret's placeholder (`file://$KEYS_FILE`) is double-quoted so that running the
 * plan expands it; any other word is taken literally.
 */
export function shellWord(w: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
  if (/^[A-Za-z0-9_@%+=:,./-]*\$[A-Z][A-Z0-9_]*$/.test(w)) return `"${w}"`;
  return `'${w.replace(/'/g, "'\\''")}'`;
}

/** A step as a POSIX sh line; a secret on stdin comes from the file its placeholder names. */
export function shellLine(step: PlannedStep): string {
  const line = step.argv.map(shellWord).join(' ');
  return step.stdin ? `${line} < "$${step.stdin}"` : line;
}

/** Adds a step to the plan; the secret on stdin appears by label only. */
function record(steps: PlannedStep[], argv: readonly string[], opts: RunOptions): PlannedStep {
  const step: PlannedStep = { argv, ...(opts.why ? { why: opts.why } : {}), ...(opts.stdin ? { stdin: opts.stdin.label } : {}) };
  steps.push(step);
  return step;
}

/** Commands run from the repository root (templates and sources are named relative to it). */
const ROOT = resolve(import.meta.dirname, '..', '..');

export function realRunner(log: (line: string) => void): Runner {
  const steps: PlannedStep[] = [];
  return {
    dryRun: false,
    steps,
    run(argv, opts = {}) {
      log(`+ ${shellLine(record(steps, argv, opts))}`);
      const [cmd = '', ...args] = argv;
      return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
        child.once('error', (err) => reject(kgwError('KGW_DEPLOY_STEP', `cannot run ${cmd}: ${err.message} (is it installed and on PATH?)`, { cmd }, err)));
        child.once('close', (code) => {
          const c = code ?? 1;
          if (c === 0 || opts.okCodes?.includes(c)) resolve({ code: c, stdout });
          else reject(kgwError('KGW_DEPLOY_STEP', `${shellLine({ argv })} exited ${c}`, { argv, code: c }));
        });
        child.stdin.end(opts.stdin?.value ?? '');
      });
    },
  };
}

/** Answers of the dry run: the first entry whose prefix matches the command wins; default "" / 0. */
export type DryAnswers = readonly { readonly prefix: readonly string[]; readonly code?: number; readonly stdout?: string }[];

export function dryRunner(answers: DryAnswers, log: (line: string) => void): Runner {
  const steps: PlannedStep[] = [];
  return {
    dryRun: true,
    steps,
    run(argv, opts = {}) {
      log(`(dry run) ${shellLine(record(steps, argv, opts))}`);
      const a = answers.find((x) => x.prefix.every((w, i) => argv[i] === w));
      return Promise.resolve({ code: a?.code ?? 0, stdout: a?.stdout ?? '' });
    },
  };
}
