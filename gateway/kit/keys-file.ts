// Reads a relay keys file (relay protocol v1) from disk, for the relay runtimes and the gateway.
import { readFile } from 'node:fs/promises';
import { describeError, kgwError } from '../core/errors.ts';
import { parseKeys, type RelayKeys } from '../protocol/relay-v1.ts';

export async function loadKeysFile(path: string): Promise<RelayKeys> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw kgwError('KGW_CONFIG_READ', `cannot read relay keys file ${path}: ${describeError(err)}`, { path }, err);
  }
  return parseKeys(text, path);
}
