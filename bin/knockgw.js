#!/usr/bin/env node
// Launcher. In a checkout the TypeScript sources run directly (Node >= 22.18 strips types); the
// published package ships only dist/ (compiled by `npm run build`), since type stripping does
// not apply under node_modules.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../gateway/main.ts', import.meta.url));
const compiled = fileURLToPath(new URL('../dist/gateway/main.js', import.meta.url));
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
const stripsTypes = major > 22 || (major === 22 && minor >= 18);

if (existsSync(source) && stripsTypes) {
  await import(source);
} else if (existsSync(compiled)) {
  await import(compiled);
} else {
  process.stderr.write(
    existsSync(source)
      ? `knockgw: Node ${process.versions.node} cannot run the TypeScript sources (need >= 22.18): use the project's pinned Node, e.g. \`npx knockgw …\`\n`
      : 'knockgw: dist/ is missing: run `npm run build`\n',
  );
  process.exit(2);
}
