// Debian's chromium driven by playwright-core, run inside a lab namespace (so its traffic leaves
// from there): playwright starts a tiny wrapper that enters the namespace and execs chromium,
// keeping the DevTools pipe it passes on fds 3 and 4. No browser download: the system binary.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, devices, type Browser, type BrowserContext } from 'playwright-core';
import type { Host } from './netns.ts';

export const CHROMIUM = '/usr/bin/chromium';

export interface PhoneBrowser {
  readonly browser: Browser;
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/**
 * A Pixel 7 in `host`'s namespace; `secureOrigins` are plain-http lab origins treated as secure
 * (WebCrypto), `names` lab host names and their addresses.
 */
export async function phoneIn(host: Host, secureOrigins: readonly string[], names: Readonly<Record<string, string>> = {}): Promise<PhoneBrowser> {
  // Lab host names without touching /etc/hosts: chromium's own resolver rules.
  const rules = Object.entries(names).map(([name, addr]) => `MAP ${name} ${addr.includes(':') ? `[${addr}]` : addr}`).join(',');
  const dir = await mkdtemp(join(tmpdir(), 'kgw-chromium-'));
  const wrapper = join(dir, 'chromium-in-netns');
  await writeFile(wrapper, `#!/bin/sh\nexec ip netns exec ${host.ns} ${CHROMIUM} "$@"\n`);
  await chmod(wrapper, 0o755);
  const browser = await chromium.launch({
    executablePath: wrapper,
    args: ['--no-sandbox', `--unsafely-treat-insecure-origin-as-secure=${secureOrigins.join(',')}`, '--no-proxy-server', '--disable-dev-shm-usage',
      // The lab's IPv6 is ULA (fd00::/8), which chromium counts as a local network while
      // 198.18.0.0/15 is public: a public page calling a "local" address needs a permission
      // prompt. A carrier's addresses are global; the lab turns the check off instead.
      '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights', ...(rules ? [`--host-resolver-rules=${rules}`] : [])],
    timeout: 30_000,
  });
  const context = await browser.newContext({ ...devices['Pixel 7'] });
  return {
    browser,
    context,
    async close() {
      await browser.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
