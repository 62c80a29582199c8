// `npm run package:deb`: dist/knockgw_<version>_<arch>.deb, built from this checkout after `npm ci`
// and nothing else (no download): the bundle of the CLI and daemon, the Node runtime of the
// lockfile's `node` package (so /usr/bin/knockgw never runs the machine's node), the units, the
// example conffile, man pages generated from the help text and the config schema, and
// maintainer scripts that keep every rule on upgrade and remove every rule on removal.
// Reproducible: every mtime is SOURCE_DATE_EPOCH (default: the last commit's time), owners root.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { dirname, join, relative, resolve } from 'node:path';
import { bundleApp } from './package/bundle-app.ts';
import { CONFIG_PATH, RELAY_DEFAULTS, controlFile, debianChangelog, packageUnits, type RuntimeLibs } from './package/control.ts';
import { configManPage, knockgwManPage } from './package/man.ts';

const ROOT = resolve(import.meta.dirname, '..');
const DEB_ARCH: Readonly<Record<string, string>> = { x64: 'amd64', arm64: 'arm64' };

function sourceDateEpoch(): number {
  const env = process.env['SOURCE_DATE_EPOCH'];
  if (env !== undefined) {
    if (!/^\d+$/.test(env)) throw new Error(`KGW_PACKAGE: SOURCE_DATE_EPOCH must be seconds since 1970, not "${env}"`);
    return Number(env);
  }
  return Number(execFileSync('git', ['-C', ROOT, 'log', '-1', '--format=%ct'], { encoding: 'utf8' }).trim());
}

/** The lockfile's Node: its version must meet package.json's engines (the runtime the package promises). */
function runtimeNode(): { path: string; version: string } {
  const path = join(ROOT, 'node_modules', 'node', 'bin', 'node');
  const version = execFileSync(path, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < 22 || (major === 22 && minor < 18)) throw new Error(`KGW_PACKAGE: node_modules/node is ${version}; the package needs Node >= 22.18 (run npm ci)`);
  return { path, version };
}

/** The newest glibc and libstdc++ symbol versions the runtime needs: its libc6 and libstdc++6 Depends. */
function runtimeLibs(binary: string): RuntimeLibs {
  const symbols = execFileSync('objdump', ['-T', binary], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const newest = (prefix: string): string => {
    const versions = [...symbols.matchAll(new RegExp(`${prefix}_([0-9.]+)`, 'g'))].map((m) => m[1] ?? '0');
    return versions.sort((a, b) => a.localeCompare(b, undefined, { numeric: true })).at(-1) ?? '0';
  };
  // GLIBCXX 3.4.N ships with GCC's libstdc++6 of the matching release; 3.4.21 is GCC 5.
  const glibcxx = Number(newest('GLIBCXX').split('.')[2] ?? 0);
  return { glibc: newest('GLIBC'), glibcxx: glibcxx >= 21 ? `${glibcxx - 16}` : '4.8' };
}

function write(path: string, text: string | Buffer, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

/** gzip -9n: no name, no timestamp (reproducible), as Debian wants man pages and changelogs. */
const gz = (text: string): Buffer => gzipSync(text, { level: 9 });

function walk(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? [p, ...walk(p)] : [p];
  });
}

export async function packageDeb(): Promise<{ path: string; bytes: number }> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const arch = DEB_ARCH[process.arch];
  if (!arch) throw new Error(`KGW_PACKAGE: no Debian architecture for ${process.arch}`);
  const epoch = sourceDateEpoch();
  const date = new Date(epoch * 1000);
  const dist = join(ROOT, 'dist');
  const stage = join(dist, 'deb-root');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  for (const old of readdirSync(dist).filter((n) => /^knockgw_.*\.deb$/.test(n))) rmSync(join(dist, old));

  const lib = join(stage, 'usr/lib/knockgw');
  await bundleApp(join(lib, 'app'));
  const node = runtimeNode();
  copyFileSync(node.path, join(lib, 'node'));
  // The npm binary carries its debug info (120 MB); the package needs only the code.
  execFileSync('strip', ['--strip-unneeded', '--remove-section=.comment', '--remove-section=.note', join(lib, 'node')]);
  chmodSync(join(lib, 'node'), 0o755);
  const libs = runtimeLibs(join(lib, 'node'));
  write(join(stage, 'usr/bin/knockgw'), readFileSync(join(ROOT, 'packaging/deb/knockgw.sh')), 0o755);

  for (const [name, text] of Object.entries(packageUnits())) write(join(stage, 'usr/lib/systemd/system', name), text);
  write(join(stage, CONFIG_PATH.slice(1)), readFileSync(join(ROOT, 'packaging/deb/knockgw.yaml')));
  write(join(stage, RELAY_DEFAULTS.slice(1)), readFileSync(join(ROOT, 'packaging/deb/knockgw-relay.default')));
  const day = date.toISOString().slice(0, 10);
  write(join(stage, 'usr/share/man/man8/knockgw.8.gz'), gz(knockgwManPage(pkg.version, day)));
  write(join(stage, 'usr/share/man/man5/knockgw.yaml.5.gz'), gz(configManPage(pkg.version, day)));
  const doc = join(stage, 'usr/share/doc/knockgw');
  write(join(doc, 'copyright'), `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: knockgw\n\nFiles: *\nCopyright: knockgw contributors\nLicense: MIT\n${readFileSync(join(ROOT, 'LICENSE'), 'utf8').trim().split('\n').map((l) => (l.trim() === '' ? ' .' : ` ${l}`)).join('\n')}\n`);
  write(join(doc, 'changelog.gz'), gz(debianChangelog(pkg.version, date)));
  write(join(stage, 'usr/share/lintian/overrides/knockgw'), readFileSync(join(ROOT, 'packaging/deb/lintian-overrides')));
  write(join(doc, 'README.md'), readFileSync(join(ROOT, 'README.md')));

  const files = walk(stage).filter((p) => statSync(p).isFile());
  const installedKiB = Math.ceil(files.reduce((n, p) => n + statSync(p).size, 0) / 1024);
  const control = join(stage, 'DEBIAN');
  write(join(control, 'control'), controlFile({ version: pkg.version, arch, installedKiB, libs }));
  write(join(control, 'conffiles'), `${CONFIG_PATH}\n${RELAY_DEFAULTS}\n`);
  for (const script of ['postinst', 'prerm', 'postrm']) write(join(control, script), readFileSync(join(ROOT, 'packaging/deb', script)), 0o755);
  const md5 = files.filter((p) => !p.startsWith(join(stage, 'etc/'))).map((p) => `${createHash('md5').update(readFileSync(p)).digest('hex')}  ${relative(stage, p)}`);
  write(join(control, 'md5sums'), `${md5.join('\n')}\n`);

  for (const p of walk(stage)) {
    if (statSync(p).isDirectory()) chmodSync(p, 0o755);
    utimesSync(p, epoch, epoch);
  }
  utimesSync(stage, epoch, epoch);
  const out = join(dist, `knockgw_${pkg.version}_${arch}.deb`);
  // xz -1: 33 MiB in seconds; -6 saves 5 MiB for minutes of build on a 2-core machine.
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-z1', '--build', stage, out], { env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) }, stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(stage, { recursive: true, force: true });
  return { path: out, bytes: statSync(out).size };
}

if (import.meta.main) {
  const started = performance.now();
  packageDeb().then(
    ({ path, bytes }) => process.stdout.write(`${relative(process.cwd(), path)} ${(bytes / 2 ** 20).toFixed(1)} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s\n`),
    (err: unknown) => {
      process.stderr.write(`knockgw package:deb: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
