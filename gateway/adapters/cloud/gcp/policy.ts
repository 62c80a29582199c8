// The gateway's GCP role binding for a configuration: the custom role (infra/gcp/gateway-role.yaml)
// bound with an IAM condition, so the permissions that act on a firewall rule hold only for
// knockgw-* rules and the network permission only for the configured network.
//
// Firewalls and networks are Compute Engine resource types that IAM Conditions recognise
// (resource.type compute.googleapis.com/Firewall and …/Network, resource.name
// projects/P/global/firewalls/NAME). Everything else the role holds is checked on other resources
// (firewalls.list on the project, globalOperations.get on operations); a condition on those would
// have nothing to match, so each clause only narrows its own resource type. What IAM cannot see:
// a rule's source ranges. A stolen gateway identity can still open a knockgw-* rule to 0.0.0.0/0;
// the adapter refuses to, and the world-open report flags such a rule (see the README).
import type { GcpTarget } from './target.ts';
import { RULE_PREFIX } from './api.ts';

export const GCP_ROLE_ID = 'knockgwGateway';

export interface GcpCondition { readonly title: string; readonly description: string; readonly expression: string }

/** The network's name from a name, a projects/P/global/networks/N path or a URL. */
function networkName(network: string): string {
  return network.split('/').filter(Boolean).pop() ?? network;
}

export function gatewayGcpCondition(config: Pick<GcpTarget, 'network'>): GcpCondition {
  const net = networkName(config.network);
  if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(net)) throw new RangeError(`"${config.network}" does not end in a VPC network name`);
  return {
    title: 'knockgw-rules-only',
    description: `firewall permissions only on ${RULE_PREFIX}* rules, network permission only on ${net}`,
    expression: [
      `(resource.type != 'compute.googleapis.com/Firewall' || resource.name.extract('/global/firewalls/{name}').startsWith('${RULE_PREFIX}'))`,
      `(resource.type != 'compute.googleapis.com/Network' || resource.name.endsWith('/global/networks/${net}'))`,
    ].join(' && '),
  };
}

/** The gcloud commands that create the role and bind it with the condition to the gateway's account. */
export function gatewayGcpCommands(config: Pick<GcpTarget, 'project' | 'network'>, serviceAccount: string): string[] {
  const c = gatewayGcpCondition(config);
  const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  return [
    `gcloud iam roles create ${GCP_ROLE_ID} --project=${config.project} --file=infra/gcp/gateway-role.yaml`,
    `gcloud projects add-iam-policy-binding ${config.project} --member=serviceAccount:${serviceAccount} --role=projects/${config.project}/roles/${GCP_ROLE_ID} --condition=${quote(`^;^title=${c.title};description=${c.description};expression=${c.expression}`)}`,
  ];
}
