// Shared pieces of the bench: percentiles, process accounting from /proc, a cleanup registry that
// also runs on Ctrl-C, and a silent logger for the adapters the bench drives in-process.
import { readdir, readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { createLogger } from '../gateway/kit/log.ts';
import { describeError } from '../gateway/core/errors.ts';
import type { Logger } from '../gateway/ports.ts';

export const silentLogger: Logger = createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile of an unsorted sample; NaN for an empty one. */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) return Number.NaN;
  const sorted = [...sample].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

// ---------------------------------------------------------------------------------------------
// Cleanup: every namespace, daemon and server the bench starts registers its undo here. The undo
// runs once, newest first, on normal exit, on failure and on SIGINT/SIGTERM.

type Undo = () => Promise<void> | void;
const undos: { what: string; fn: Undo }[] = [];
let signalled = false;

export function onCleanup(what: string, fn: Undo): () => void {
  const entry = { what, fn };
  undos.push(entry);
  return () => {
    const i = undos.indexOf(entry);
    if (i >= 0) undos.splice(i, 1);
  };
}

export async function cleanupAll(): Promise<void> {
  while (undos.length > 0) {
    const u = undos.pop();
    if (!u) break;
    try {
      await u.fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup of ${u.what} failed: ${describeError(err)}\n`);
    }
  }
}

export function installSignalCleanup(): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (signalled) return;
      signalled = true;
      process.stderr.write(`\nbench: ${sig}, cleaning up…\n`);
      const hardStop = setTimeout(() => process.exit(130), 15_000);
      void cleanupAll().finally(() => {
        clearTimeout(hardStop);
        process.exit(130);
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// /proc accounting of a process tree (a daemon and its tcpdump children).

const CLK_TCK = 100;

interface ProcStat { readonly pid: number; readonly ppid: number; readonly cpuTicks: number; readonly childTicks: number }

async function procStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may itself contain spaces).
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const n = (i: number): number => Number(rest[i - 3] ?? 0);
    return { pid, ppid: n(4), cpuTicks: n(14) + n(15), childTicks: n(16) + n(17) };
  } catch {
    return undefined;
  }
}

async function rssKb(pid: number): Promise<number> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The pid and every live descendant. */
export async function processTree(root: number): Promise<number[]> {
  const all: ProcStat[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = await procStat(Number(name));
    if (s) all.push(s);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const s of all) if (s.ppid === tree[i]) tree.push(s.pid);
  return tree;
}

export interface TreeSample { readonly cpuSec: number; readonly rssMb: number; readonly pids: readonly number[] }

/**
 * CPU seconds (user + system of the live tree, plus the reaped children of the root, which is
 * where the `nft` runs of a daemon land) and resident memory of the tree.
 */
export async function sampleTree(root: number): Promise<TreeSample> {
  const pids = await processTree(root);
  let ticks = 0;
  let kb = 0;
  for (const pid of pids) {
    const s = await procStat(pid);
    if (!s) continue;
    ticks += s.cpuTicks + (pid === root ? s.childTicks : 0);
    kb += await rssKb(pid);
  }
  return { cpuSec: ticks / CLK_TCK, rssMb: kb / 1024, pids };
}
