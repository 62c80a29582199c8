// Run inside a namespace (`node test/helpers/spa-listen.ts PORT`): the daemon's SPA socket alone,
// printing `ready`, then one JSON line {src, len} per datagram it receives.
import { Writable } from 'node:stream';
import { createSpaSocket } from '../../gateway/adapters/capture/index.ts';
import { createLogger } from '../../gateway/kit/log.ts';

const logger = createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });
const sock = createSpaSocket({ port: Number(process.argv[2]), logger });
await sock.start((d) => process.stdout.write(`${JSON.stringify({ src: d.src, len: d.payload.length })}\n`), (err) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
process.stdout.write('ready\n');
process.on('SIGTERM', () => void sock.close().then(() => process.exit(0)));
