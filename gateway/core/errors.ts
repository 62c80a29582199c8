// Every error knockgw raises carries a stable code (documented in the README), the offending
// value where there is one, and what to do about it.

export const ERROR_CODES = {
  KGW_CONFIG_INVALID: 'the configuration is invalid',
  KGW_CONFIG_READ: 'the configuration file cannot be read',
  KGW_CONFIG_KNOCKD: 'knockd.conf cannot be understood',
  KGW_CONFIG_FWKNOP: 'an fwknopd access.conf or fwknopd.conf cannot be used as it is',
  KGW_ONE_TIME_SEQUENCES: 'the one_time_sequences file cannot be read or updated',
  KGW_IP_INVALID: 'not a valid IP address',
  KGW_IP_REFUSED: 'refusing to grant access to this address',
  KGW_PORT_INVALID: 'not a valid port specification',
  KGW_FW_COMMAND: 'a firewall command failed',
  KGW_FW_CONFLICT: 'another firewall rule would override knockgw',
  KGW_CMD_INVALID: 'a knockd.conf command cannot be run safely',
  KGW_CMD_FAILED: 'a knockd.conf command failed',
  KGW_PCAP_FORMAT: 'the packet capture stream is malformed',
  KGW_CAPTURE_FAILED: 'the packet capture process failed',
  KGW_STATE_FILE: 'the state file cannot be read or written',
  KGW_STORE_UNAVAILABLE: 'the grant store is unavailable',
  KGW_STORE_AUTH: 'the grant store refused the credentials',
  KGW_STORE_DATA: 'the grant store holds data knockgw cannot read',
  KGW_STORE_FULL: 'the replay-protection store is full',
  KGW_CLOUD_REFUSED: 'refusing to send this cloud firewall change',
  KGW_CLOUD_API: 'a cloud API call failed',
  KGW_CLOUD_RESPONSE: 'a cloud API answer is malformed',
  KGW_CLOUD_QUOTA: 'the cloud firewall is full',
  KGW_CLOUD_WORLD_OPEN: 'a cloud firewall rule outside knockgw opens a protected port to the whole Internet',
  KGW_CLOUD_SDK: 'a cloud SDK cannot be loaded',
  KGW_RIVAL_RUNNING: 'knockd or fwknopd already runs here',
  KGW_CONTROL: 'the control socket cannot be used',
  KGW_CLI_USAGE: 'the command line is invalid',
  KGW_PRIVILEGE: 'this needs root (CAP_NET_ADMIN, CAP_NET_RAW)',
  KGW_TOOL_MISSING: 'a required system tool is missing',
  KGW_SPA_REQUEST: 'an SPA packet cannot be built from this request',
  KGW_RELAY_MALFORMED: 'the request is malformed',
  KGW_RELAY_TOO_LARGE: 'the request is too large',
  KGW_RELAY_BAD_SIGNATURE: 'the signature does not verify',
  KGW_RELAY_UNKNOWN_CLIENT: 'the client is not known',
  KGW_RELAY_DOOR_FORBIDDEN: 'the client may not open this door',
  KGW_RELAY_DOOR_UNKNOWN: 'the gateway has no such door',
  KGW_RELAY_IP_FORBIDDEN: 'the address cannot be granted: another IP the client may not name, or one the gateway never grants (loopback, unspecified, multicast…)',
  KGW_RELAY_REPLAY: 'the nonce was already used',
  KGW_RELAY_STALE: 'the timestamp is outside the allowed window',
  KGW_RELAY_RATE_LIMITED: 'too many requests',
  KGW_RELAY_UNREACHABLE: 'the relay cannot be reached',
  KGW_RELAY_RESPONSE: 'the relay answered something knockgw cannot read',
  KGW_ENROLL_TOKEN: 'the enrollment link is used, expired or unknown',
  KGW_DEVICE_UNKNOWN: 'no enrolled device has this id',
  KGW_SSH_UNREACHABLE: 'the port did not answer after the knock',
  KGW_DEPLOY_USAGE: 'the deploy command line is invalid',
  KGW_DEPLOY_CREDENTIAL: "the relay's Redis credential would let a compromised relay mint grants",
  KGW_DEPLOY_STEP: 'a deploy step failed',
  KGW_INTERNAL: 'an internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class KnockgwError extends Error {
  readonly code: ErrorCode;
  readonly detail: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, detail: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'KnockgwError';
    this.code = code;
    this.detail = Object.freeze({ ...detail });
  }
}

export function kgwError(code: ErrorCode, message: string, detail: Record<string, unknown> = {}, cause?: unknown): KnockgwError {
  return new KnockgwError(code, message, detail, cause === undefined ? undefined : { cause });
}

export function isKnockgwError(err: unknown, code?: ErrorCode): err is KnockgwError {
  return err instanceof KnockgwError && (code === undefined || err.code === code);
}

/** A message fit for a log line or a terminal, whatever was thrown. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The exit status of a command that failed with `err` (the README's Errors table): 64 for a
 * command line that cannot run (sysexits EX_USAGE), 78 for a configuration that cannot run
 * (EX_CONFIG: the file, a file it names, or a knockd.conf command that cannot run safely),
 * 1 for anything else.
 */
export function exitStatusFor(err: unknown): 1 | 64 | 78 {
  if (!isKnockgwError(err)) return 1;
  if (err.code === 'KGW_CLI_USAGE' || err.code === 'KGW_DEPLOY_USAGE') return 64;
  if (err.code.startsWith('KGW_CONFIG_') || err.code === 'KGW_CMD_INVALID' || err.code === 'KGW_ONE_TIME_SEQUENCES') return 78;
  return 1;
}
