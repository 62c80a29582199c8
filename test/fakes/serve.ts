// Process entry for the end-to-end cloud tests: runs the EC2 and GCE fakes on 127.0.0.1 of the
// namespace it is started in (where the daemon under test can reach them), prints their endpoints
// as one JSON line, and answers GET /state on a unix socket with what the fakes hold — the test
// process lives in another network namespace but shares the filesystem.
//
//   node test/fakes/serve.ts --socket PATH [--project ID] [--security-group SG]… [--prefix-list ID:4|6]…
import { createServer } from 'node:http';
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startEc2Fake } from './ec2.ts';
import { startGceFake } from './gce.ts';
import { kgwError } from '../../gateway/core/errors.ts';
import type { FakesReady, FakesState } from '../helpers/cloud-fakes.ts';

const USAGE = 'usage: node test/fakes/serve.ts --socket PATH [--project ID] [--security-group SG]… [--prefix-list ID:4|6]…';

function prefixList(spec: string): { id: string; family: 4 | 6 } {
  const m = /^(pl-[0-9a-f]+):([46])$/.exec(spec);
  if (!m?.[1]) throw kgwError('KGW_CLI_USAGE', `--prefix-list "${spec}" must be ID:4 or ID:6, e.g. pl-0123456789abcdef0:4; ${USAGE}`, { value: spec });
  return { id: m[1], family: m[2] === '6' ? 6 : 4 };
}

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    project: { type: 'string' },
    'security-group': { type: 'string', multiple: true },
    'prefix-list': { type: 'string', multiple: true },
  },
});
if (!values.socket) throw kgwError('KGW_CLI_USAGE', `--socket is required; ${USAGE}`);
const socketPath = values.socket;
const securityGroups = values['security-group'] ?? ['sg-0123456789abcdef0'];
const prefixLists = (values['prefix-list'] ?? []).map(prefixList);

const ec2 = await startEc2Fake({ securityGroups, prefixLists });
const gce = await startGceFake(values.project ? { project: values.project } : {});

function snapshot(): FakesState {
  return {
    ec2: {
      rules: ec2.rules().map((r) => ({ ...r, tags: { ...r.tags } })),
      prefixLists: prefixLists.map(({ id }) => {
        const l = ec2.prefixList(id);
        return { id: l.id, family: l.family, version: l.version, state: l.state, entries: Object.fromEntries(l.entries) };
      }),
      calls: { ...ec2.calls },
      throttled: ec2.throttled.count,
    },
    gce: { firewalls: gce.firewalls(), calls: { ...gce.calls }, throttled: gce.throttled.count },
  };
}

// A stale socket from a killed run would make listen() fail with EADDRINUSE.
await rm(socketPath, { force: true });
const inspection = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/state') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(snapshot()));
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /state\n');
});
await new Promise<void>((resolve, reject) => {
  inspection.once('error', reject);
  inspection.listen(socketPath, resolve);
});

let closing = false;
async function shutdown(): Promise<void> {
  if (closing) return;
  closing = true;
  inspection.closeAllConnections();
  await new Promise<void>((resolve) => inspection.close(() => resolve()));
  await Promise.all([ec2.close(), gce.close()]);
  await rm(socketPath, { force: true });
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void shutdown().finally(() => process.exit(0));
  });
}

const ready: FakesReady = { ec2: ec2.endpoint, gce: gce.endpoint, project: gce.project, securityGroups, pid: process.pid };
process.stdout.write(`${JSON.stringify(ready)}\n`);
