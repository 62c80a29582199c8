// Another port-knocking daemon in the same network namespace sees the same packets and changes the
// same firewall: knockd on the knock ports, fwknopd on the SPA port. Two doors on one port, each
// opening it by its own rules, is the state an operator can no longer reason about, so knockgw
// refuses to start beside one (and doctor and the package say so). Other namespaces do not count:
// the bench runs knockd in its own lab.
import { readdir, readFile, readlink } from 'node:fs/promises';

export type RivalName = 'knockd' | 'fwknopd';
export interface Rival {
  readonly name: RivalName;
  readonly pid: number;
}

async function netNamespace(procDir: string): Promise<string | undefined> {
  return readlink(`${procDir}/ns/net`).catch(() => undefined);
}

/** The processes named `names` in this process's network namespace (`proc` for tests). */
export async function findRivals(names: readonly RivalName[], proc = '/proc'): Promise<Rival[]> {
  if (names.length === 0) return [];
  const ours = await netNamespace(`${proc}/self`);
  const found: Rival[] = [];
  for (const entry of await readdir(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    // A process can end between readdir and here: then it is no rival.
    const comm = (await readFile(`${proc}/${entry}/comm`, 'utf8').catch(() => '')).trim();
    const name = names.find((n) => n === comm);
    if (name && (await netNamespace(`${proc}/${entry}`)) === ours) found.push({ name, pid: Number(entry) });
  }
  return found.sort((a, b) => a.pid - b.pid);
}

/** Which rivals a config has: knockd beside knock doors, fwknopd beside SPA. */
export function rivalsOf(config: { readonly sequences: readonly unknown[]; readonly spa?: unknown }): RivalName[] {
  return [...(config.sequences.length > 0 ? ['knockd' as const] : []), ...(config.spa ? ['fwknopd' as const] : [])];
}

export function rivalText(r: Rival): string {
  const unit = r.name === 'knockd' ? 'knockd' : 'fwknop-server';
  return `${r.name} (pid ${r.pid}) runs in this network namespace: it sees the same ${r.name === 'knockd' ? 'knocks' : 'SPA packets'} and changes the same firewall. Stop it first (systemctl disable --now ${unit}); knockgw reads its ${r.name === 'knockd' ? '/etc/knockd.conf' : '/etc/fwknop/access.conf'} unchanged`;
}
