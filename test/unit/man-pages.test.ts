// The man pages are generated from the usage text and the config schema; these checks keep the
// generator honest: every command and option, every config key, and groff renders them cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { configKeys, configManPage, knockgwManPage, usageCommands } from '../../scripts/package/man.ts';
import { USAGE } from '../../gateway/cli.ts';
import { ERROR_CODES } from '../../gateway/core/errors.ts';
import { knownKeysAt } from '../../gateway/config/schema.ts';

const unroff = (text: string): string => text.replace(/\\-/g, '-').replace(/\\e/g, '\\').replace(/\\&/g, '');
const page8 = unroff(knockgwManPage('9.9.9', '2026-01-01'));
const page5 = unroff(configManPage('9.9.9', '2026-01-01'));

void test('knockgw(8) names every command, every option of the usage text and every error code', () => {
  const commands = new Set(usageCommands().map((c) => c.name));
  for (const cmd of ['daemon', 'knock', 'status', 'revoke', 'doctor', 'install', 'uninstall', 'base', 'relay', 'keygen', 'enroll', 'devices', 'ssh']) assert.ok(commands.has(cmd), cmd);
  for (const option of new Set(USAGE.match(/--[a-z0-9-]+/g))) assert.ok(page8.includes(option), option);
  for (const code of Object.keys(ERROR_CODES)) assert.ok(page8.includes(code), code);
  assert.match(page8, /^\.TH KNOCKGW 8 "2026-01-01" "knockgw 9\.9\.9"/);
});

void test('knockgw.yaml(5) names every key the config accepts, with its default and limits', () => {
  const keys = configKeys().map((k) => k.path);
  for (const top of knownKeysAt([])) assert.ok(keys.includes(top), top);
  for (const key of keys) assert.ok(page5.includes(`.B ${key}\n`), key);
  assert.match(page5, /\.B doors\[\]\.seqTimeout\ninteger; default 25; 1 to 3600/);
});

void test('groff renders both pages without a warning', () => {
  for (const page of [knockgwManPage('1', '2026-01-01'), configManPage('1', '2026-01-01')]) {
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: page, encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.equal(r.stderr, '');
  }
});
