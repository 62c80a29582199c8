// The gateway's cloud permissions for a config file, generated from what the adapters accept:
//   npm run iam -- aws --config /etc/knockgw/config.yaml --account 123456789012
//   npm run iam -- gcp --config /etc/knockgw/config.yaml --service-account gw@P.iam.gserviceaccount.com
// AWS: the policy JSON on stdout, the command that marks the groups/lists as knockgw's on stderr.
// GCP: the commands that create the custom role and bind it with the knockgw-* condition.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { gatewayAwsPolicy, gatewayGcpCommands, managedTagCommands } from '../gateway/adapters/cloud/index.ts';
import { loadConfig } from '../gateway/config/load.ts';
import { describeError, exitStatusFor, kgwError } from '../gateway/core/errors.ts';

const USAGE = 'usage: npm run iam -- aws --config FILE.yaml --account ID\n       npm run iam -- gcp --config FILE.yaml --service-account EMAIL';

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], allowPositionals: true, strict: true, options: { config: { type: 'string' }, account: { type: 'string' }, 'service-account': { type: 'string' } } });
  } catch (err) {
    throw kgwError('KGW_CLI_USAGE', describeError(err).replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values, positionals } = parsed;
  const [cloud] = positionals;
  if ((cloud !== 'aws' && cloud !== 'gcp') || positionals.length !== 1) throw kgwError('KGW_CLI_USAGE', 'name one cloud: aws or gcp');
  if (!values.config) throw kgwError('KGW_CLI_USAGE', '--config FILE.yaml is required');
  // The daemon's own loader: a missing file is KGW_CONFIG_READ (exit 78), a bad one names its line.
  const config = await loadConfig({ yamlPath: values.config, hostname: hostname() });
  if (cloud === 'aws') {
    const aws = config.cloud.aws;
    if (!aws) throw kgwError('KGW_CLI_USAGE', `${values.config} has no cloud.aws section`);
    if (!values.account) throw kgwError('KGW_CLI_USAGE', '--account (the 12-digit account of the groups) is required');
    process.stdout.write(`${JSON.stringify(gatewayAwsPolicy(aws, values.account), null, 2)}\n`);
    process.stderr.write(`# the policy allows changes only on groups/lists tagged as knockgw's; tag them once:\n${managedTagCommands(aws).join('\n')}\n`);
    return;
  }
  const gcp = config.cloud.gcp;
  if (!gcp) throw kgwError('KGW_CLI_USAGE', `${values.config} has no cloud.gcp section`);
  if (!values['service-account']) throw kgwError('KGW_CLI_USAGE', '--service-account (the gateway\'s) is required');
  process.stdout.write(`${gatewayGcpCommands(gcp, values['service-account']).join('\n')}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const status = exitStatusFor(err);
  process.stderr.write(`knockgw iam: ${describeError(err)}\n${status === 64 ? `${USAGE}\ntry npm run iam -- --help\n` : ''}`);
  process.exitCode = status;
});
