// Turns the phases' results into a readable table, the machine-readable `bench key=value` lines
// and the verdict on each target from the issue.
import type { SystemResult } from './knock.ts';
import type { ScaleResult } from './scale.ts';
import type { HaResult } from './ha.ts';
import type { CloudResult } from './cloud.ts';
import type { RelayBenchResult } from './relay.ts';
import type { SpaSystemResult } from './spa.ts';
import type { FleetResult } from './fleet/index.ts';
import { fleetMetricLines, renderFleet } from './fleet/report.ts';
import { round } from './lib.ts';
import { fmt, table } from './table.ts';
import { renderStages } from './trace.ts';

export interface BenchResults {
  knock?: SystemResult[];
  spa?: SpaSystemResult[];
  scale?: ScaleResult;
  ha?: HaResult;
  cloud?: CloudResult[];
  relay?: RelayBenchResult[];
  fleet?: FleetResult;
  errors: { phase: string; message: string }[];
}

const sys = (r: BenchResults, name: string): SystemResult | undefined => r.knock?.find((s) => s.name === name);

/** knockd's number over knockgw's: how many times faster knockgw is. */
function ratio(r: BenchResults, name: 'kernel' | 'pcap', key: 'p50Ms' | 'p99Ms'): number | undefined {
  const base = sys(r, 'knockd')?.latency[key];
  const ours = sys(r, name)?.latency[key];
  return base !== undefined && ours !== undefined && ours > 0 ? round(base / ours, 1) : undefined;
}

const spaSys = (r: BenchResults, name: string): SpaSystemResult | undefined => r.spa?.find((s) => s.name === name);

/** fwknopd's SPA → open p50 over knockgw's. */
function spaRatio(r: BenchResults): number | undefined {
  const base = spaSys(r, 'fwknopd')?.latency.p50Ms;
  const ours = spaSys(r, 'knockgw')?.latency.p50Ms;
  return base !== undefined && ours !== undefined && ours > 0 ? round(base / ours, 1) : undefined;
}

function spaTables(r: BenchResults): string[] {
  const list = r.spa ?? [];
  const out = ['', 'SPA sent → port answers (SPA datagram out → SYN-ACK in, packet timestamps on the client; same access.conf for both)'];
  out.push(table(['system', 'runs', 'p50 ms', 'p99 ms', 'mean ms', 'grant logged (p50)', 'failed', 'fwknopd/x p50'], list.map((s) => [
    s.label, String(s.latency.runs), fmt(s.latency.p50Ms), fmt(s.latency.p99Ms), fmt(s.latency.meanMs), fmt(s.latency.grantLoggedP50Ms), String(s.latency.failures),
    s.name === 'fwknopd' ? '1' : `${fmt(spaRatio(r))}×`,
  ])));
  const rows = list.flatMap((s) => [
    ...(s.flood ? [{ label: s.label, f: s.flood }] : []),
    ...(s.flood64 ? [{ label: `${s.label}, base64 text instead`, f: s.flood64 }] : []),
  ]);
  if (rows.length) {
    out.push('', 'SPA flood (hping3 -2 --rand-source, 180-byte payloads from /dev/urandom on the SPA port; a legit client sends an SPA packet every second)');
    out.push(table(['system', 'flood pps', 'legit opened', 'legit p50 ms', 'legit p99 ms', 'CPU s', 'CPU % core', 'RSS MB before→after', 'log lines'], rows.map(({ label, f }) => [
      label, String(f.floodPps), `${f.legitOpened}/${f.legitAttempts}`, fmt(f.legitP50Ms), fmt(f.legitP99Ms), fmt(f.cpuSec), fmt(f.cpuPct), `${f.rssBeforeMb}→${f.rssAfterMb} (+${f.rssGrowthMb})`, String(f.logLines),
    ])));
  }
  return out;
}

export function renderTables(r: BenchResults): string {
  const out: string[] = [];
  if (r.knock?.length) {
    out.push('knock→open (last knock SYN out → SYN-ACK in, packet timestamps on the client)');
    out.push(table(['system', 'runs', 'p50 ms', 'p99 ms', 'mean ms', 'opened after (p50)', 'grant logged (p50)', 'client gap (p50)', 'failed', 'close failed', 'knockd/x p50'], r.knock.map((s) => [
      s.label, String(s.latency.runs), fmt(s.latency.p50Ms), fmt(s.latency.p99Ms), fmt(s.latency.meanMs), fmt(s.latency.openedAfterP50Ms), fmt(s.latency.grantLoggedP50Ms), fmt(s.latency.pollGapP50Ms),
      String(s.latency.failures), String(s.latency.closeFailures), s.name === 'knockd' ? '1' : `${fmt(ratio(r, s.name, 'p50Ms'))}×`,
    ])));
    const flooded = r.knock.filter((s) => s.flood);
    if (flooded.length) {
      out.push('', 'flood (hping3 --rand-source -S on the first knock port; a legit client knocks open+close every second)');
      out.push(table(['system', 'flood pps', 'legit opened', 'closed', 'legit p50 ms', 'legit p99 ms', 'CPU s', 'CPU % core', 'RSS MB before→after', 'log lines'], flooded.map((s) => {
        const f = s.flood;
        if (!f) return [s.label];
        return [s.label, String(f.floodPps), `${f.legitOpened}/${f.legitAttempts}`, `${f.legitCloseOk}/${f.legitOpened}`, fmt(f.legitP50Ms), fmt(f.legitP99Ms), fmt(f.cpuSec), fmt(f.cpuPct), `${f.rssBeforeMb}→${f.rssAfterMb} (+${f.rssGrowthMb})`, String(f.logLines)];
      })));
    }
  }
  for (const s of r.knock ?? []) out.push(...renderStages(`${s.label}, knock→open`, s.trace ?? []), ...renderStages(`${s.label}, under the SYN flood`, s.floodTrace ?? []));
  if (r.spa?.length) out.push(...spaTables(r));
  for (const s of r.spa ?? []) {
    out.push(...renderStages(`${s.label}, SPA→open`, s.trace ?? []), ...renderStages(`${s.label}, under the random flood`, s.floodTrace ?? []), ...renderStages(`${s.label}, under the base64 flood`, s.flood64Trace ?? []));
  }
  if (r.scale) {
    out.push('', 'nftables backend apply() (one nft transaction per batch)');
    out.push(table(['grants', 'add ms', 'add µs/elem', 'remove ms', 'remove µs/elem'], r.scale.batches.map((b) => [String(b.n), fmt(b.addMs), fmt(b.addUsPerElem), fmt(b.removeMs), fmt(b.removeUsPerElem)])));
    out.push(`per change: apply() of 1 grant ${r.scale.singleApplyMs} ms (p50); list() ${r.scale.listEmptyMs} ms empty, ${r.scale.listFullMs} ms with ${r.scale.batches.at(-1)?.n ?? 0} grants`);
  }
  if (r.ha) out.push('', `HA propagation (put on A → watch on B, real redis-server): p50 ${r.ha.p50Ms} ms, p99 ${r.ha.p99Ms} ms, max ${r.ha.maxMs} ms over ${r.ha.samples}`);
  if (r.cloud?.length) {
    out.push('', `cloud API calls per grant (${r.cloud[0]?.grants ?? 0} grants, real SDKs against the wire-protocol fakes)`);
    out.push(table(['provider', 'burst grant', 'burst revoke', 'trickle (a knock alone)', 'trickle start-up calls', 'burst ms'],
      r.cloud.map((c) => [c.mode, fmt(c.burstGrantPerGrant), fmt(c.burstRevokePerGrant), fmt(c.tricklePerGrant), fmt(c.trickleWarmupCalls), fmt(c.burstMs)])));
  }
  if (r.relay?.length) {
    out.push('', 'relay: signed knocks against the Node server (one process pinned to one core)');
    out.push(table(['alg', 'req/s', 'p50 ms', 'p99 ms', 'req per CPU-s', 'errors'], r.relay.map((x) => [x.alg, String(x.reqPerSec), fmt(x.p50Ms), fmt(x.p99Ms), String(x.reqPerCpuSec), String(x.errors)])));
  }
  if (r.fleet) out.push('', renderFleet(r.fleet));
  for (const e of r.errors) out.push('', `PHASE FAILED: ${e.phase}: ${e.message}`);
  return out.join('\n');
}

export function metricLines(r: BenchResults): string[] {
  const m: [string, number | undefined][] = [];
  for (const s of r.knock ?? []) {
    m.push([`knock_open_p50_ms_${s.name}`, s.latency.p50Ms], [`knock_open_p99_ms_${s.name}`, s.latency.p99Ms], [`knock_open_failures_${s.name}`, s.latency.failures],
      [`knock_grant_logged_p50_ms_${s.name}`, s.latency.grantLoggedP50Ms]);
  }
  for (const name of ['kernel', 'pcap'] as const) {
    if (sys(r, name) && sys(r, 'knockd')) m.push([`knock_open_p50_ratio_${name}`, ratio(r, name, 'p50Ms')], [`knock_open_p99_ratio_${name}`, ratio(r, name, 'p99Ms')]);
  }
  for (const s of r.knock ?? []) {
    const f = s.flood;
    if (!f) continue;
    m.push(
      [`flood_pps_${s.name}`, f.floodPps],
      [`flood_legit_success_${s.name}`, f.legitAttempts ? round(f.legitOpened / f.legitAttempts, 3) : undefined],
      [`flood_close_success_${s.name}`, f.legitOpened ? round(f.legitCloseOk / f.legitOpened, 3) : undefined],
      [`flood_legit_p50_ms_${s.name}`, f.legitP50Ms],
      [`flood_legit_p99_ms_${s.name}`, f.legitP99Ms],
      [`flood_cpu_s_${s.name}`, f.cpuSec],
      [`flood_cpu_pct_${s.name}`, f.cpuPct],
      [`flood_rss_growth_mb_${s.name}`, f.rssGrowthMb],
      [`flood_log_lines_${s.name}`, f.logLines],
    );
  }
  for (const s of r.spa ?? []) {
    m.push([`spa_open_p50_ms_${s.name}`, s.latency.p50Ms], [`spa_open_p99_ms_${s.name}`, s.latency.p99Ms], [`spa_open_failures_${s.name}`, s.latency.failures], [`spa_grant_logged_p50_ms_${s.name}`, s.latency.grantLoggedP50Ms]);
    const f = s.flood;
    if (f) {
      m.push([`spa_flood_pps_${s.name}`, f.floodPps], [`spa_flood_legit_success_${s.name}`, f.legitAttempts ? round(f.legitOpened / f.legitAttempts, 3) : undefined],
        [`spa_flood_legit_p99_ms_${s.name}`, f.legitP99Ms], [`spa_flood_cpu_pct_${s.name}`, f.cpuPct], [`spa_flood_rss_growth_mb_${s.name}`, f.rssGrowthMb], [`spa_flood_log_lines_${s.name}`, f.logLines]);
    }
  }
  const f64 = spaSys(r, 'knockgw')?.flood64;
  if (f64) m.push(['spa_flood64_pps_knockgw', f64.floodPps], ['spa_flood64_legit_success_knockgw', f64.legitAttempts ? round(f64.legitOpened / f64.legitAttempts, 3) : undefined], ['spa_flood64_cpu_pct_knockgw', f64.cpuPct]);
  if (r.spa?.length) m.push(['spa_open_p50_ratio', spaRatio(r)]);
  if (r.scale) {
    for (const b of r.scale.batches) {
      const k = b.n >= 1000 ? `${b.n / 1000}k` : String(b.n);
      m.push([`grants_${k}_add_us_per_elem`, b.addUsPerElem], [`grants_${k}_remove_us_per_elem`, b.removeUsPerElem]);
    }
    m.push(['nft_apply_single_ms', r.scale.singleApplyMs], ['nft_list_empty_ms', r.scale.listEmptyMs], ['nft_list_full_ms', r.scale.listFullMs]);
  }
  if (r.ha) m.push(['ha_propagation_p50_ms', r.ha.p50Ms], ['ha_propagation_p99_ms', r.ha.p99Ms]);
  for (const c of r.cloud ?? []) {
    const k = c.mode.replace(/-/g, '_');
    m.push([`cloud_calls_per_grant_${k}`, c.burstGrantPerGrant], [`cloud_revoke_calls_per_grant_${k}`, c.burstRevokePerGrant], [`cloud_calls_per_grant_${k}_trickle`, c.tricklePerGrant]);
  }
  for (const x of r.relay ?? []) {
    const k = x.alg === 'hmac-sha256' ? 'hmac' : 'ed25519';
    m.push([`relay_req_per_s_${k}`, x.reqPerSec], [`relay_p99_ms_${k}`, x.p99Ms], [`relay_req_per_cpu_s_${k}`, x.reqPerCpuSec]);
  }
  const relayMin = r.relay?.length ? Math.min(...r.relay.map((x) => x.reqPerSec)) : undefined;
  m.push(['relay_req_per_s', relayMin]);
  const traced = [...(r.knock ?? []).map((s) => ({ name: s.name, rows: s.trace })), ...(r.spa ?? []).map((s) => ({ name: `spa_${s.name}`, rows: s.trace }))];
  for (const { name, rows } of traced) for (const row of rows ?? []) m.push([`trace_${name}_${row.stage}_p50_ms`, row.p50Ms], [`trace_${name}_${row.stage}_p99_ms`, row.p99Ms]);
  const lines = m.filter(([, v]) => v !== undefined).map(([k, v]) => `bench ${k}=${v}`);
  return r.fleet ? [...lines, ...fleetMetricLines(r.fleet)] : lines;
}

/** Each target from the issue: the measured value and whether it is met. */
export function verdicts(r: BenchResults): string[] {
  const out: string[] = [];
  const check = (what: string, value: number | undefined, ok: (v: number) => boolean, unit = ''): void => {
    if (value === undefined || !Number.isFinite(value)) return;
    out.push(`${ok(value) ? 'MET   ' : 'MISSED'} ${what}: ${value}${unit}`);
  };
  const kernel = sys(r, 'kernel'), pcap = sys(r, 'pcap');
  check('kernel knock→open p50 ≤ 0.5 ms', kernel?.latency.p50Ms, (v) => v <= 0.5, ' ms');
  check('kernel ≥ 90× faster than knockd (p50)', ratio(r, 'kernel', 'p50Ms'), (v) => v >= 90, '×');
  check('pcap knock→open p50 ≤ 1 ms', pcap?.latency.p50Ms, (v) => v <= 1, ' ms');
  check('pcap ≥ 45× faster than knockd (p50)', ratio(r, 'pcap', 'p50Ms'), (v) => v >= 45, '×');
  for (const s of [kernel, pcap]) {
    const f = s?.flood;
    if (!s || !f) continue;
    check(`${s.name}: 100% of legit knocks open under flood`, f.legitAttempts ? round((100 * f.legitOpened) / f.legitAttempts, 1) : undefined, (v) => v === 100, '%');
    check(`${s.name}: legit p99 ≤ 5 ms under flood`, f.legitP99Ms, (v) => v <= 5, ' ms');
    check(`${s.name}: daemon CPU ≤ 20% of a core under flood`, f.cpuPct, (v) => v <= 20, '%');
    check(`${s.name}: RSS growth ≤ 10 MB under flood`, f.rssGrowthMb, (v) => v <= 10, ' MB');
  }
  const spa = spaSys(r, 'knockgw');
  check('SPA → open p50 ≤ 1.5 ms', spa?.latency.p50Ms, (v) => v <= 1.5, ' ms');
  check('SPA ≥ 60× faster than fwknopd (p50)', spaRatio(r), (v) => v >= 60, '×');
  const sf = spa?.flood;
  if (sf) {
    check('SPA flood: 100% of legit SPA packets open', sf.legitAttempts ? round((100 * sf.legitOpened) / sf.legitAttempts, 1) : undefined, (v) => v === 100, '%');
    check('SPA flood: legit p99 ≤ 5 ms', sf.legitP99Ms, (v) => v <= 5, ' ms');
    check('SPA flood: daemon CPU ≤ 10% of a core', sf.cpuPct, (v) => v <= 10, '%');
    check('SPA flood: RSS growth ≤ 10 MB', sf.rssGrowthMb, (v) => v <= 10, ' MB');
  }
  const sf64 = spa?.flood64;
  if (sf64) {
    check('SPA base64 flood: 100% of legit SPA packets open', sf64.legitAttempts ? round((100 * sf64.legitOpened) / sf64.legitAttempts, 1) : undefined, (v) => v === 100, '%');
    check('SPA base64 flood: legit p99 ≤ 20 ms', sf64.legitP99Ms, (v) => v <= 20, ' ms');
    check('SPA base64 flood: daemon CPU ≤ 20% of a core', sf64.cpuPct, (v) => v <= 20, '%');
  }
  const big = r.scale?.batches.at(-1);
  if (big) {
    check(`${big.n} grants: add < 1 ms each`, round(big.addUsPerElem / 1000, 4), (v) => v < 1, ' ms');
    check(`${big.n} grants: remove < 1 ms each`, round(big.removeUsPerElem / 1000, 4), (v) => v < 1, ' ms');
  }
  check('HA propagation p99 ≤ 20 ms', r.ha?.p99Ms, (v) => v <= 20, ' ms');
  for (const c of r.cloud ?? []) {
    // per-grant GCP is the audit-log option: one rule (insert + wait) per grant by design.
    if (c.mode !== 'gcp-per-grant') check(`cloud ${c.mode}: ≤ 0.2 calls/grant batched`, c.burstGrantPerGrant, (v) => v <= 0.2);
    check(`cloud ${c.mode}: ≤ 2 calls for a knock alone`, c.tricklePerGrant, (v) => v <= 2);
  }
  for (const x of r.relay ?? []) {
    check(`relay (${x.alg}) ≥ 5k req/s`, x.reqPerSec, (v) => v >= 5000, ' req/s');
    // A refused knock is answered fast: a rate made of refusals measures nothing.
    check(`relay (${x.alg}): every knock accepted`, x.errors, (v) => v === 0, ' refused or failed');
  }
  return out;
}
