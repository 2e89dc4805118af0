// Typechecks every ```ts block of README.md and docs/**/*.md on its own, against the BUILT package (run
// `npm run build` first), in strict mode, the way a user's app would compile it:
//   - as an ES module (`.ts` in this "type": "module" package, module nodenext): `import` resolves to dist/;
//   - again as CommonJS (`.cts`, module nodenext, as a Nest 11 app made by `nest new`): `require` resolves to
//     dist/cjs/. A block fenced ```ts esm (top-level await, ESM-only APIs) is checked as an ES module only.
// Each block becomes its own module (moduleDetection: force), so no block sees another's names. A block that is
// deliberately partial must not be fenced as ts (use ```text, or ```ts with the full sample).
// The samples are written to .doc-samples/ inside the package, so 'nestjs-concurrency' resolves to this package's
// own exports (self-reference), exactly as an installed copy would. Errors are reported as <file.md>:<line>.
// First, every relative link of those pages must point at a file the package ships.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ts = createRequire(import.meta.url)('typescript');

if (!existsSync(join(root, 'dist/index.d.ts')) || !existsSync(join(root, 'dist/cjs/index.d.ts'))) {
  console.error('check-doc-samples: dist/ is missing; run `npm run build` first.');
  process.exit(1);
}

function markdownFiles() {
  const files = [join(root, 'README.md')];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  walk(join(root, 'docs'));
  return files;
}

/** Every ```ts block: { md, line (1-based, of the first code line), code, esmOnly }. */
function extract(md) {
  const lines = readFileSync(md, 'utf8').split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(ts|typescript)(?:\s+(.*))?$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const flags = (open[3] ?? '').split(/\s+/);
    const body = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(indent));
    if (j === lines.length) throw new Error(`${relative(root, md)}:${i + 1}: unterminated code block`);
    blocks.push({ md: relative(root, md), line: i + 2, code: body.join('\n') + '\n', esmOnly: flags.includes('esm') });
    i = j;
  }
  return blocks;
}

// Relative links must resolve to a file that ships in the package ("files"), so they work from an installed copy
// and from the npm page's file browser too.
const shipped = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).files;
const brokenLinks = [];
for (const md of markdownFiles()) {
  readFileSync(md, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
        const path = join(dirname(md), decodeURI(target.split('#')[0]));
        const rel = relative(root, path);
        const top = rel.split(sep)[0];
        if (!existsSync(path)) brokenLinks.push(`${relative(root, md)}:${i + 1}: ${target} does not exist`);
        else if (rel.startsWith('..') || !shipped.includes(top))
          brokenLinks.push(`${relative(root, md)}:${i + 1}: ${target} is not in package.json "files"`);
      }
    });
}
if (brokenLinks.length) {
  console.error(brokenLinks.join('\n'));
  console.error(`\ncheck-doc-samples: ${brokenLinks.length} link(s) that do not resolve inside the package.`);
  process.exit(1);
}

const outDir = join(root, '.doc-samples');
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

const origin = new Map(); // sample file -> block
let count = 0;
for (const md of markdownFiles()) {
  for (const block of extract(md)) {
    count++;
    const base = `${block.md.replace(/[^\w]+/g, '_')}_L${block.line}`;
    const esm = join(outDir, `${base}.ts`);
    writeFileSync(esm, block.code);
    origin.set(esm, { ...block, build: 'ESM (dist/)' });
    if (!block.esmOnly) {
      const cjs = join(outDir, `${base}.cts`);
      writeFileSync(cjs, block.code);
      origin.set(cjs, { ...block, build: 'CommonJS (dist/cjs/)' });
    }
  }
}

const options = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  moduleDetection: ts.ModuleDetectionKind.Force,
  target: ts.ScriptTarget.ES2023,
  strict: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  esModuleInterop: true,
  skipLibCheck: true,
  noEmit: true,
  types: ['node'],
};
const program = ts.createProgram([...origin.keys()], options);
const diagnostics = ts.getPreEmitDiagnostics(program);

let failed = 0;
for (const d of diagnostics) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
  const block = d.file ? origin.get(d.file.fileName) : undefined;
  if (!d.file || !block) {
    console.error(`error TS${d.code}: ${message}`);
    failed++;
    continue;
  }
  const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
  console.error(`${block.md}:${block.line + line}:${character + 1} [${block.build}] TS${d.code}: ${message}`);
  failed++;
}
const files = origin.size;
if (failed) {
  console.error(`\ncheck-doc-samples: ${failed} error(s) in ${count} ts blocks (${files} files checked).`);
  process.exit(1);
}
console.log(`check-doc-samples: ${count} ts blocks, ${files} compilations (ESM and CommonJS), no errors.`);
