// Values in fwknopd's files that need more than a regex: keys and netmasks.
import type { FwknopFail, FwknopLine } from './fwknop-lines.ts';

const PLACEHOLDER = '__CHANGEME__';

/**
 * KEY / HMAC_KEY (a passphrase, its bytes as written) or KEY_BASE64 / HMAC_KEY_BASE64. libfko
 * refuses longer keys on every packet (RIJNDAEL_MAX_KEYSIZE 32, MAX_DIGEST_BLOCK_LEN 136), so a
 * longer one is an error here rather than a door that never opens.
 */
export function parseFwknopKey(l: FwknopLine, name: string, maxBytes: number, fail: FwknopFail): Buffer {
  if (l.value.toUpperCase() === PLACEHOLDER) fail(l.line, `${name} is still the placeholder ${PLACEHOLDER}: set the keys \`fwknop --key-gen\` prints (fwknopd refuses this file too)`);
  let bytes: Buffer;
  if (name.endsWith('_BASE64')) {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(l.value) || l.value.replace(/=+$/, '').length % 4 === 1) fail(l.line, `${name} is not base64 data`);
    bytes = Buffer.from(l.value, 'base64');
  } else {
    // fwknopd keeps trailing blanks in a passphrase; a client typing it would not: refuse the doubt.
    if (l.raw !== l.value) fail(l.line, `${name} ends with blanks, which fwknopd would make part of the key: remove them (or use ${name}_BASE64)`);
    bytes = Buffer.from(l.value, 'utf8');
  }
  if (bytes.length < 1 || bytes.length > maxBytes) fail(l.line, `${name} is ${bytes.length} bytes; fwknop keys are 1-${maxBytes} bytes`);
  return bytes;
}

/** "255.255.255.0" -> 24; undefined when the mask is not ones followed by zeros (or not a mask). */
export function netmaskPrefix(mask: string): number | undefined {
  const parts = mask.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  const bits = parts.map((p) => Number(p).toString(2).padStart(8, '0')).join('');
  const prefix = bits.indexOf('0') < 0 ? 32 : bits.indexOf('0');
  return bits.slice(prefix).includes('1') ? undefined : prefix;
}
