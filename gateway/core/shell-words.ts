// Splits a knockd.conf command into argv the way a POSIX shell splits a simple command into
// words (quotes, backslashes), with no expansion at all. knockd hands its commands to /bin/sh;
// knockgw runs them with execFile, so anything a shell would *interpret* (operators,
// substitutions, variables, globs) would silently mean something else here, and is refused
// instead of guessed at.

export type WordsResult =
  | { readonly ok: true; readonly words: readonly string[] }
  | { readonly ok: false; readonly reason: string; readonly index: number };

const OPERATORS: Readonly<Record<string, string>> = {
  ';': 'a command separator ";"',
  '&': 'a background/and operator "&"',
  '|': 'a pipe or or-operator "|"',
  '<': 'a redirection "<"',
  '>': 'a redirection ">"',
  '(': 'a subshell "("',
  ')': 'a subshell ")"',
  '`': 'a command substitution "`…`"',
  '*': 'a glob "*"',
  '?': 'a glob "?"',
  '[': 'a glob "["',
  '{': 'a brace expansion "{"',
  '}': 'a brace expansion "}"',
};

function dollarReason(text: string, i: number): string {
  return text[i + 1] === '(' ? 'a command substitution "$(…)"' : 'a variable expansion "$…"';
}

export function splitWords(text: string): WordsResult {
  const words: string[] = [];
  let word = '';
  // A word exists once anything (even empty quotes) was seen since the last separator.
  let inWord = false;
  const fail = (reason: string, index: number): WordsResult => ({ ok: false, reason, index });

  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    const code = c.charCodeAt(0);
    if (c === '\n' || c === '\r') return fail('a newline (more than one command)', i);
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    if (code < 0x20 || code === 0x7f) return fail(`a control character (0x${code.toString(16).padStart(2, '0')})`, i);
    if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) return fail('a trailing backslash', i);
      if (next === '\n') return fail('a newline (more than one command)', i + 1);
      word += next;
      inWord = true;
      i++;
      continue;
    }
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) return fail("an unterminated single quote", i);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        const d = text[j] ?? '';
        if (d === '$') return fail(dollarReason(text, j), j);
        if (d === '`') return fail(OPERATORS['`'] ?? '', j);
        if (d === '\n' || d === '\r') return fail('a newline (more than one command)', j);
        if (d === '\\') {
          const next = text[j + 1];
          // Inside double quotes a backslash only escapes these; elsewhere it stays literal.
          if (next === '$' || next === '`' || next === '"' || next === '\\') {
            word += next;
            j++;
            continue;
          }
        }
        word += d;
      }
      if (j >= text.length) return fail('an unterminated double quote', i);
      inWord = true;
      i = j;
      continue;
    }
    if (c === '$') return fail(dollarReason(text, i), i);
    const op = OPERATORS[c];
    if (op !== undefined) return fail(op, i);
    if (!inWord && c === '#') return fail('a comment "#"', i);
    if (!inWord && c === '~') return fail('a tilde expansion "~"', i);
    word += c;
    inWord = true;
  }
  if (inWord) words.push(word);
  return { ok: true, words };
}
