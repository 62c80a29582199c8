#!/usr/bin/env node
// Launcher: from a checkout, run the TypeScript sources on Node >= 22.18 (type stripping);
// a published package ships dist/ (compiled), where type stripping does not apply.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const compiled = fileURLToPath(new URL('../dist/gateway/main.js', import.meta.url));
const source = fileURLToPath(new URL('../gateway/main.ts', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number);
if (existsSync(compiled)) {
  await import(compiled);
} else if (major > 22 || (major === 22 && minor >= 18)) {
  await import(source);
} else {
  process.stderr.write(`knockgw: Node ${process.versions.node} is too old (need >= 22.18); use the project's pinned Node: npx knockgw …\n`);
  process.exit(2);
}
