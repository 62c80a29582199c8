// The line format fwknopd reads access.conf and fwknopd.conf with (server/access.c,
// server/config_init.c): a line whose first character is '#' or ';' is a comment, and
// `sscanf(line, "%s %[^;\n\r]")` splits the rest into a name and a value that ends at the first ';'.
// Names are case-sensitive (CONF_VAR_IS is strcmp). Unlike fwknopd, a line of blanks is skipped
// rather than fatal, and a line without a value is an error in both files.
import { kgwError } from '../core/errors.ts';

export interface FwknopLine {
  readonly name: string;
  /** Up to the first ';', leading blanks dropped, trailing ones kept (see `value`). */
  readonly raw: string;
  /** `raw` without trailing blanks. */
  readonly value: string;
  readonly line: number;
}

export type FwknopFail = (line: number, message: string) => never;

export function fwknopFail(path: string): FwknopFail {
  return (line, message) => {
    throw kgwError('KGW_CONFIG_FWKNOP', `${path}:${line}: ${message}`, { file: path, line });
  };
}

export function fwknopLines(text: string, fail: FwknopFail): FwknopLine[] {
  const out: FwknopLine[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line === '' || line.startsWith('#') || line.startsWith(';') || line.trim() === '') return;
    const m = /^\s*(\S+)\s*([^;]*)/.exec(line);
    const name = m?.[1] ?? '';
    const raw = m?.[2] ?? '';
    if (raw.trim() === '') fail(i + 1, `"${line.trim()}" has no value: write "${name} VALUE"`);
    out.push({ name, raw, value: raw.trimEnd(), line: i + 1 });
  });
  return out;
}

/** fwknopd's booleans: a value starting with Y or y is yes, anything else no (add_acc_bool()). */
export function fwknopYes(value: string): boolean {
  return /^y/i.test(value);
}
