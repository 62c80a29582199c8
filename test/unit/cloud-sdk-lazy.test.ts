// Most hosts use no cloud, and a host on AWS never needs Google's SDK (~1.3 s and ~250 MB of RSS
// to load): importing the cloud adapters and the daemon loads neither SDK, an adapter loads only
// its own cloud's, and a missing SDK is KGW_CLOUD_SDK naming the package (they are optional
// dependencies). node --test runs each file in its own process, so this one sees every load.
import { registerHooks } from 'node:module';
import { test } from 'node:test';
import assert from 'node:assert/strict';

const SDK = /^(@aws-sdk\/|@google-cloud\/|google-auth-library)/;
const resolved = new Set<string>();
let missing: string | undefined;
registerHooks({
  resolve(specifier, context, next) {
    if (specifier === missing) throw Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
    if (SDK.test(specifier)) resolved.add(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'));
    return next(specifier, context);
  },
});

const SSH = [{ port: 22, proto: 'tcp' as const }];
// Nothing listens on port 9 of loopback, and creating an adapter sends no request anyway.
const ENDPOINT = 'http://127.0.0.1:9';

void test('importing the adapters, the cloud wiring and the daemon loads no cloud SDK', async () => {
  await import('../../gateway/adapters/cloud/index.ts');
  await import('../../gateway/wiring/cloud-firewalls.ts');
  await import('../../gateway/daemon.ts');
  assert.deepEqual([...resolved], []);
});

void test('an AWS adapter loads the EC2 client and nothing of Google', async () => {
  const { createAwsCloudFirewall } = await import('../../gateway/adapters/cloud/index.ts');
  const { logger: silentLogger } = (await import('../helpers/cloud.ts')).captureLog();
  const fw = await createAwsCloudFirewall({ config: { region: 'eu-west-1', securityGroupIds: ['sg-0123456789abcdef0'], mode: 'rules', endpoint: ENDPOINT }, logger: silentLogger, protectedPorts: SSH });
  fw.close();
  assert.ok(resolved.has('@aws-sdk/client-ec2'));
  assert.deepEqual([...resolved].filter((p) => !p.startsWith('@aws-sdk/')), [], 'no Google package');
});

void test('a GCP adapter without its SDK installed is KGW_CLOUD_SDK naming the package', async () => {
  const { createGcpCloudFirewall } = await import('../../gateway/adapters/cloud/index.ts');
  const { logger: silentLogger } = (await import('../helpers/cloud.ts')).captureLog();
  missing = '@google-cloud/compute';
  await assert.rejects(
    createGcpCloudFirewall({ config: { project: 'p', network: 'default', targetTags: ['knockgw'], targetServiceAccounts: [], priority: 900, mode: 'aggregated', endpoint: ENDPOINT }, logger: silentLogger, protectedPorts: SSH }),
    (err: Error & { code?: string }) => err.code === 'KGW_CLOUD_SDK' && /npm i -g @google-cloud\/compute/.test(err.message) && /cloud\.gcp/.test(err.message),
  );
});
