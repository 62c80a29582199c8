// HostFirewall on nftables: knockgw's own table `inet knockgw` (see core/nft-ruleset.ts), every
// change one `nft -f -` transaction. Optionally also the in-kernel knock engine (core/nft-kernel.ts).
import { z } from 'zod';
import { describeError, kgwError } from '../../core/errors.ts';
import { parseIp } from '../../core/ip.ts';
import { renderBase, renderLockdown, renderOps, NET_SETS, NFT_FAMILY, NFT_TABLE, type ExistingObjects } from '../../core/nft-ruleset.ts';
import { ALLOWED_SETS, compileKernel, DONE_WINDOW_MS, doneSet, type KernelCompileInput, type KernelProgram } from '../../core/nft-kernel.ts';
import { compileIntake, type IntakeCompileInput } from '../../core/nft-intake.ts';
import type { KernelCompletion } from '../../core/types.ts';
import type { PortSpec, Proto } from '../../core/grant.ts';
import type { Clock, HostFirewall, Logger } from '../../ports.ts';
import type { FirewallEntry, FirewallOp } from '../../core/types.ts';
import { systemClock } from '../../ports.ts';
import { run, type Runner } from '../exec/index.ts';
import { createNftSession } from './nft-session.ts';

export interface NftablesOptions {
  readonly logger: Logger;
  /** Run nft inside this network namespace. */
  readonly netns?: string;
  readonly runner?: Runner;
  readonly clock?: Clock;
  /** Compile these sequences into the kernel knock engine (rendered by ensureBase). */
  readonly kernel?: KernelCompileInput;
  /** The packet intakes in front of the daemon: SPA and the pcap engine's knocks over NFLOG. */
  readonly intake?: IntakeCompileInput;
}

export interface KernelSetStats { readonly name: string; readonly size: number; readonly entries: number }

export interface NftablesFirewall extends HostFirewall {
  readonly name: 'nftables';
  /** The compiled kernel engine, when one was configured. */
  readonly kernelProgram: KernelProgram | undefined;
  /** Fill of the kernel engine's dynamic sets (a full set refuses new knocks). */
  kernelStats(): Promise<KernelSetStats[]>;
}

/** Scripts up to this size run on the long-lived nft session. */
const SESSION_MAX_SCRIPT = 64 * 1024;

/** Above this fill the log says the kernel engine is about to refuse new knocks. */
const SET_FILL_WARNING = 0.8;

const Scalar = z.union([z.string(), z.number()]);
/** An interval set prints a prefix element as { prefix: { addr, len } }. */
const Prefix = z.object({ prefix: z.object({ addr: z.string(), len: z.number().int() }) });
const Concat = z.object({ concat: z.array(z.union([Scalar, Prefix])) });
const TimedElem = z.object({ elem: z.object({ val: z.union([Concat, Scalar]), timeout: z.number().optional(), expires: z.number().optional() }) });
const NftListing = z.object({ nftables: z.array(z.record(z.string(), z.unknown())) });
const SetObject = z.object({ name: z.string(), table: z.string(), size: z.number().optional(), elem: z.array(z.unknown()).optional() });
const ChainObject = z.object({ name: z.string(), table: z.string() });

function parseListing(text: string, what: string): Record<string, unknown>[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw kgwError('KGW_FW_COMMAND', `nft -j ${what} did not print JSON`, { output: text.slice(0, 500) }, err);
  }
  const parsed = NftListing.safeParse(json);
  if (!parsed.success) throw kgwError('KGW_FW_COMMAND', `nft -j ${what} printed unexpected JSON: ${parsed.error.message}`, { output: text.slice(0, 500) });
  return parsed.data.nftables;
}

const isMissing = (stderr: string): boolean => /No such file or directory/.test(stderr);

function toProto(v: string | number | undefined): Proto | undefined {
  if (v === 'tcp' || v === 6) return 'tcp';
  if (v === 'udp' || v === 17) return 'udp';
  return undefined;
}

/** One allowed-set element as nft -j prints it, or undefined for anything knockgw did not write. */
function toEntry(raw: unknown, now: number): FirewallEntry | undefined {
  const timed = TimedElem.safeParse(raw);
  const plain = Concat.safeParse(raw);
  const val = timed.success ? timed.data.elem.val : plain.success ? plain.data : undefined;
  if (!val || typeof val !== 'object') return undefined;
  const [ipValue, protoText, portValue] = val.concat;
  const net = Prefix.safeParse(ipValue);
  const ip = typeof ipValue === 'string' ? parseIp(ipValue) : net.success ? parseIp(net.data.prefix.addr) : undefined;
  const proto = typeof protoText === 'object' ? undefined : toProto(protoText);
  const port = Number(portValue);
  if (!ip || !proto || !Number.isInteger(port)) return undefined;
  // nft -j reports whole seconds; an element with a timeout but no `expires` is about to go.
  const expiresAt = timed.success && timed.data.elem.timeout !== undefined ? now + (timed.data.elem.expires ?? 0) * 1000 : null;
  const prefix = net.success && net.data.prefix.len < (ip.family === 4 ? 32 : 128) ? net.data.prefix.len : undefined;
  return { ip: ip.address, family: ip.family, ...(prefix !== undefined ? { prefix } : {}), port, proto, expiresAt };
}

export function createNftablesFirewall(opts: NftablesOptions): NftablesFirewall {
  const exec = opts.runner ?? run;
  const clock = opts.clock ?? systemClock;
  const log = opts.logger.child({ component: 'firewall-nftables' });
  const kernelProgram = opts.kernel ? compileKernel(opts.kernel) : undefined;
  const intakeProgram = opts.intake ? compileIntake(opts.intake) : undefined;
  const session = createNftSession({ logger: log, ...(opts.netns ? { netns: opts.netns } : {}) });
  const nft = (args: readonly string[], input?: string, allowFail = false) =>
    exec('nft', args, { ...(opts.netns ? { netns: opts.netns } : {}), ...(input !== undefined ? { input } : {}), allowFail });

  async function existing(): Promise<ExistingObjects> {
    const res = await nft(['-j', '-t', 'list', 'table', NFT_FAMILY, NFT_TABLE], undefined, true);
    if (res.code !== 0) {
      if (isMissing(res.stderr)) return { chains: [], sets: [] };
      throw kgwError('KGW_FW_COMMAND', `nft list table ${NFT_FAMILY} ${NFT_TABLE} failed: ${res.stderr}`, { stderr: res.stderr });
    }
    const items = parseListing(res.stdout, 'list table');
    const chains: string[] = [];
    const sets: string[] = [];
    for (const item of items) {
      const chain = ChainObject.safeParse(item.chain);
      if (chain.success && chain.data.table === NFT_TABLE) chains.push(chain.data.name);
      const set = SetObject.safeParse(item.set);
      if (set.success && set.data.table === NFT_TABLE) sets.push(set.data.name);
    }
    return { chains, sets };
  }

  async function listSet(name: string): Promise<z.infer<typeof SetObject> | undefined> {
    const res = await nft(['-j', 'list', 'set', NFT_FAMILY, NFT_TABLE, name], undefined, true);
    if (res.code !== 0) {
      if (isMissing(res.stderr)) return undefined;
      throw kgwError('KGW_FW_COMMAND', `nft list set ${name} failed: ${res.stderr}`, { set: name, stderr: res.stderr });
    }
    for (const item of parseListing(res.stdout, `list set ${name}`)) {
      const set = SetObject.safeParse(item.set);
      if (set.success) return set.data;
    }
    return undefined;
  }

  /** The full base failed: drop the protected ports with the smallest table that can hold, then fail. */
  async function lockdown(protectedPorts: readonly PortSpec[], cause: unknown): Promise<never> {
    const ports = protectedPorts.map((p) => `${p.port}/${p.proto}`).join(', ');
    try {
      await nft(['-f', '-'], renderLockdown(protectedPorts));
      log.error({ event: 'firewall.lockdown', ports, err: describeError(cause) }, `the base rules could not be installed; ${ports} are now dropped for everyone until they can`);
    } catch (again) {
      log.fatal({ event: 'firewall.lockdown_failed', ports, err: describeError(again) }, `neither the base rules nor the lockdown could be installed: ${ports} may be open`);
    }
    throw kgwError('KGW_FW_COMMAND', `cannot install the nftables base rules: ${describeError(cause)}`, {}, cause);
  }

  return {
    name: 'nftables',
    kernelProgram,

    async ensureBase(protectedPorts: readonly PortSpec[]): Promise<void> {
      try {
        await nft(['-f', '-'], renderBase(protectedPorts, await existing(), kernelProgram, intakeProgram));
      } catch (err) {
        await lockdown(protectedPorts, err);
      }
      log.info({ event: 'firewall.base', table: `${NFT_FAMILY} ${NFT_TABLE}`, ports: protectedPorts.map((p) => `${p.port}/${p.proto}`), kernelSequences: kernelProgram?.sequences.length ?? 0 }, 'nftables base ready');
      for (const s of kernelProgram?.skipped ?? []) {
        log.info({ event: 'kernel.fallback', sequence: s.id, reason: s.reason }, `sequence ${s.id} runs on the pcap engine: ${s.reason}`);
      }
      for (const s of intakeProgram?.undeferred ?? []) {
        log.info({ event: 'intake.undeferred', sequence: s.id, reason: s.reason }, `every knock packet of ${s.id} reaches the daemon (${s.reason}): only the per-source rate limit bounds a flood on its ports`);
      }
    },

    async apply(ops: readonly FirewallOp[]): Promise<void> {
      const script = renderOps(ops, clock.now());
      if (!script) return;
      // Knock-sized batches go to the long-lived nft; bulk ones (restart, 100k grants) to nft -f.
      if (script.length <= SESSION_MAX_SCRIPT) await session.run(script);
      else await nft(['-f', '-'], script);
    },

    async list(): Promise<FirewallEntry[]> {
      const now = clock.now();
      const out: FirewallEntry[] = [];
      for (const name of [...Object.values(ALLOWED_SETS), ...Object.values(NET_SETS)]) {
        const set = await listSet(name);
        for (const raw of set?.elem ?? []) {
          const e = toEntry(raw, now);
          if (e) out.push(e);
        }
      }
      return out;
    },

    async warm() {
      // Start the long-lived nft now, so the first knock does not pay for it.
      await session.run('');
    },

    close() {
      session.close();
    },

    async teardown(): Promise<void> {
      // `add` first makes the delete idempotent: nothing else in the ruleset is touched.
      await nft(['-f', '-'], `table ${NFT_FAMILY} ${NFT_TABLE}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`);
      log.info({ event: 'firewall.teardown', table: `${NFT_FAMILY} ${NFT_TABLE}` }, 'nftables table removed');
    },

    async kernelCompletions(): Promise<KernelCompletion[]> {
      const now = clock.now();
      const out: KernelCompletion[] = [];
      for (const seq of kernelProgram?.sequences ?? []) {
        for (const family of [4, 6] as const) {
          const set = await listSet(doneSet(seq.index, family));
          for (const raw of set?.elem ?? []) {
            const timed = TimedElem.safeParse(raw);
            const ip = timed.success && typeof timed.data.elem.val === 'string' ? parseIp(timed.data.elem.val) : undefined;
            const expires = timed.success ? timed.data.elem.expires : undefined;
            if (!ip || expires === undefined) continue;
            out.push({ sequenceIndex: seq.index, ip: ip.address, family: ip.family, completedAt: now - (DONE_WINDOW_MS - expires * 1000) });
          }
        }
      }
      return out;
    },

    async kernelStats(): Promise<KernelSetStats[]> {
      const stats: KernelSetStats[] = [];
      for (const def of kernelProgram?.sets ?? []) {
        const set = await listSet(def.name);
        if (!set) continue;
        const size = set.size ?? 0;
        const entries = set.elem?.length ?? 0;
        if (size > 0 && entries >= size * SET_FILL_WARNING) {
          log.warn({ event: 'kernel.set_full', set: def.name, entries, size }, `kernel knock set ${def.name} is ${Math.round((100 * entries) / size)}% full: new knocks are refused when it is full (flood?)`);
        }
        stats.push({ name: def.name, size, entries });
      }
      return stats;
    },
  };
}
