// `knockgw knock --relay`, `knockgw keygen` and `knockgw relay`.
import { writeFile } from 'node:fs/promises';
import { relayKnock } from '../client/relay-knock.ts';
import { keygen } from '../client/keygen.ts';
import { kgwError } from '../core/errors.ts';
import { createLogger } from '../kit/log.ts';
import { systemClock } from '../ports.ts';
import { loadKeysFile } from '../kit/keys-file.ts';
import type { Command } from '../cli.ts';

export async function runRelayCommand(command: Extract<Command, { cmd: 'relay-knock' | 'keygen' | 'relay' }>): Promise<number> {
  switch (command.cmd) {
    case 'relay-knock': {
      const answer = await relayKnock({ url: command.url, keyFile: command.keyFile, door: command.door, ...(command.ip ? { ip: command.ip } : {}) });
      process.stdout.write(`${JSON.stringify(answer)}\n`);
      return 0;
    }
    case 'keygen': {
      if (command.doors.length === 0) throw kgwError('KGW_CLI_USAGE', 'keygen needs at least one --door DOOR the key may open');
      const result = keygen({ id: command.id, alg: command.alg, doors: command.doors });
      const out = command.out ?? `${command.id}.key.json`;
      // wx: never overwrite an existing private key by accident.
      await writeFile(out, result.privateKeyFile, { mode: 0o600, flag: 'wx' }).catch((err: unknown) => {
        throw kgwError('KGW_CLI_USAGE', `cannot write ${out}: ${err instanceof Error ? err.message : String(err)}`, { out }, err);
      });
      process.stderr.write(`wrote the private key to ${out} (keep it on the client); add this entry to the keys file's "clients":\n`);
      process.stdout.write(`${JSON.stringify(result.keysEntry, null, 2)}\n`);
      return 0;
    }
    case 'relay': {
      const [{ buildRelay }, { serveUntilSignal }, { nodeClientIp }] = await Promise.all([import('../../relay/runtime.ts'), import('../../relay/serve.ts'), import('../../relay/server.ts')]);
      const logger = createLogger({ level: 'info', format: 'json' });
      const relay = buildRelay({ keys: await loadKeysFile(command.keysFile), store: command.store, getClientIp: nodeClientIp(command.trustedProxies), clock: systemClock, logger, ...(command.publicUrls ? { publicUrls: command.publicUrls } : {}) });
      return serveUntilSignal(relay, { listen: command.listen, trustedProxies: command.trustedProxies, logger });
    }
  }
}
