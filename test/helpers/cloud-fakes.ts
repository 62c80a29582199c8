// Runs the EC2 and GCE fakes (test/fakes/serve.ts) as a child process inside a namespace, so a
// daemon in that namespace reaches them on its own 127.0.0.1, and reads their state back over a
// unix socket (the filesystem is shared across network namespaces).
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { z } from 'zod';
import type { Host } from './netns.ts';

export const SERVE = fileURLToPath(new URL('../fakes/serve.ts', import.meta.url));

/** The one line serve.ts prints once both fakes listen. */
export const fakesReadySchema = z.object({ ec2: z.string(), gce: z.string(), project: z.string(), securityGroups: z.array(z.string()), pid: z.number() });
export type FakesReady = z.infer<typeof fakesReadySchema>;

const counts = z.record(z.string(), z.number());

/** What the inspection socket answers on GET /state. */
export const fakesStateSchema = z.object({
  ec2: z.object({
    rules: z.array(z.object({
      id: z.string(),
      groupId: z.string(),
      family: z.union([z.literal(4), z.literal(6)]),
      cidr: z.string(),
      proto: z.string(),
      fromPort: z.number(),
      toPort: z.number(),
      description: z.string(),
      tags: z.record(z.string(), z.string()),
    })),
    prefixLists: z.array(z.object({ id: z.string(), family: z.union([z.literal(4), z.literal(6)]), version: z.number(), state: z.string(), entries: z.record(z.string(), z.string()) })),
    calls: counts,
    throttled: z.number(),
  }),
  gce: z.object({
    firewalls: z.array(z.looseObject({ name: z.string(), sourceRanges: z.array(z.string()).optional(), targetTags: z.array(z.string()).optional(), allowed: z.array(z.object({ IPProtocol: z.string(), ports: z.array(z.string()).optional() })).optional() })),
    calls: counts,
    throttled: z.number(),
  }),
});
export type FakesState = z.infer<typeof fakesStateSchema>;

export interface CloudFakes extends FakesReady {
  readonly child: ChildProcess;
  state(): Promise<FakesState>;
  /** Polls the state until `pred` holds; rejects after `timeoutMs` with the last state. */
  until(pred: (s: FakesState) => boolean, timeoutMs: number, what: string): Promise<FakesState>;
  stop(): Promise<void>;
}

function getJson(socketPath: string, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`fakes inspection ${path}: HTTP ${res.statusCode}: ${body}`));
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`fakes inspection ${path}: no answer within 2 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Starts serve.ts in `host`'s namespace and waits (≤ 15 s) until it reports its endpoints. */
/** `prefixLists`: managed prefix lists the EC2 fake holds, as `pl-…:4` or `pl-…:6`. */
export async function startCloudFakes(host: Host, opts: { socketPath: string; project?: string; securityGroups?: readonly string[]; prefixLists?: readonly string[] }): Promise<CloudFakes> {
  const args = [SERVE, '--socket', opts.socketPath];
  if (opts.project) args.push('--project', opts.project);
  for (const sg of opts.securityGroups ?? []) args.push('--security-group', sg);
  for (const pl of opts.prefixLists ?? []) args.push('--prefix-list', pl);
  const child = host.spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));

  const ready = await new Promise<FakesReady>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`the cloud fakes did not start within 15 s; stderr: ${stderr.slice(-800)}`)), 15_000);
    const onExit = (code: number | null): void => fail(new Error(`the cloud fakes exited (${code}) before they were ready; stderr: ${stderr.slice(-800)}`));
    const onData = (d: Buffer): void => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      cleanup();
      try {
        resolve(fakesReadySchema.parse(JSON.parse(out.slice(0, nl))));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    const fail = (err: Error): void => {
      cleanup();
      child.kill('SIGKILL');
      reject(err);
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });

  const state = async (): Promise<FakesState> => fakesStateSchema.parse(await getJson(opts.socketPath, '/state'));
  return {
    ...ready,
    child,
    state,
    async until(pred, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      let last = await state();
      while (!pred(last)) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; fakes state: ${JSON.stringify(last)}`);
        await new Promise((r) => setTimeout(r, 50));
        last = await state();
      }
      return last;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
