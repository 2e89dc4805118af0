// Builds the package from lib/: dist/ holds the ES module build (the primary one), dist/cjs/ the CommonJS build,
// each with its own declarations (dist/cjs/package.json says "type": "commonjs", so TypeScript reads dist/cjs/*.d.ts
// as CommonJS types). Then checks what the CommonJS build must not contain.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = (project) => execFileSync(process.execPath, [tsc, '-p', project], { cwd: root, stdio: 'inherit' });

rmSync(join(root, 'dist'), { recursive: true, force: true });
run('tsconfig.build.json');
run('tsconfig.build.cjs.json');

const cjs = join(root, 'dist/cjs');
writeFileSync(join(cjs, 'package.json'), '{\n  "type": "commonjs"\n}\n');

// Files tsc does not emit: the worker-thread entry of FanOut (plain CommonJS, the same file for both builds, found
// beside the module that starts the pools).
// The dashboard's page (one self-contained HTML file), read beside the module that serves it.
for (const file of ['fan-out/worker/fan-out.worker.cjs', 'observability/dashboard/dashboard.html']) {
  for (const build of ['dist', 'dist/cjs']) copyFileSync(join(root, 'lib', file), join(root, build, file));
}

// The guard that refuses a second build in one process must know which build it is in.
const guard = join(cjs, 'utils/single-build.guard.js');
const esmLine = "const FORMAT = 'ES module';";
const source = readFileSync(guard, 'utf8');
if (source.split(esmLine).length !== 2) throw new Error(`${guard}: expected exactly one line ${esmLine}`);
writeFileSync(guard, source.replace(esmLine, "const FORMAT = 'CommonJS';"));

// CommonJS cannot hold import.meta, top-level await or a real import() (tsc turns import() into require()).
const offences = [];
for (const entry of readdirSync(cjs, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.js')) continue;
  const file = join(entry.parentPath, entry.name);
  const code = readFileSync(file, 'utf8');
  if (/\bimport\.meta\b/.test(code)) offences.push(`${file}: import.meta`);
  if (/^await\b|^export\b|^import\b/m.test(code)) offences.push(`${file}: ES module syntax at top level`);
}
if (offences.length > 0) throw new Error(`The CommonJS build is not CommonJS:\n${offences.join('\n')}`);

// Every file package.json "exports" names (the main entry and the subpaths, e.g. ./testing) is in its build.
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const targets = (value) => (typeof value === 'string' ? [value] : Object.values(value).flatMap(targets));
const missing = targets(manifest.exports).filter((file) => file.startsWith('./dist/') && !existsSync(join(root, file)));
if (missing.length > 0)
  throw new Error(`package.json "exports" names files the build did not emit: ${missing.join(', ')}`);
