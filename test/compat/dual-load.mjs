// The dual-package check. Run in a consumer app folder where the packed nestjs-concurrency is installed:
//   node dual-load.mjs <app folder>
// Each scenario runs in a fresh Node.js process. require() must get the CommonJS build and import the ES module
// build; both in one process must fail at once with the package's own error (two copies of every class would break
// injection by class); the same build loaded again (Jest's registry per test file, jest.resetModules) must work.
import { spawnSync } from 'node:child_process';

const cwd = process.argv[2];
if (!cwd) throw new Error('usage: node dual-load.mjs <app folder>');

const prelude = `
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const report = (value) => console.log(JSON.stringify(value));
const load = async (how) => (how === 'require' ? require('nestjs-concurrency') : await import('nestjs-concurrency'));
const attempt = async (how) => {
  try {
    const m = await load(how);
    return typeof m.ConcurrencyModule === 'function' ? 'loaded' : 'loaded without ConcurrencyModule';
  } catch (error) {
    return 'refused: ' + error.message;
  }
};
`;

const refusal = (now, first) =>
  `refused: nestjs-concurrency: its ${now} build is being loaded while its ${first} build is already loaded`;

const scenarios = [
  {
    name: 'require() resolves to the CommonJS build and loads it',
    code: `report([require.resolve('nestjs-concurrency').replaceAll('\\\\', '/').endsWith('/dist/cjs/index.js'), await attempt('require')]);`,
    expect: (out) => JSON.stringify(out) === JSON.stringify([true, 'loaded']),
  },
  {
    name: 'import resolves to the ES module build and loads it',
    code: `report([import.meta.resolve('nestjs-concurrency').endsWith('/dist/index.js'), await attempt('import')]);`,
    expect: (out) => JSON.stringify(out) === JSON.stringify([true, 'loaded']),
  },
  {
    name: 'require() then import in one process: the import is refused',
    code: `report([await attempt('require'), await attempt('import')]);`,
    expect: ([first, second]) => first === 'loaded' && second.startsWith(refusal('ES module', 'CommonJS')),
  },
  {
    name: 'import then require() in one process: the require() is refused',
    code: `report([await attempt('import'), await attempt('require')]);`,
    expect: ([first, second]) => first === 'loaded' && second.startsWith(refusal('CommonJS', 'ES module')),
  },
  {
    name: 'the CommonJS build loaded again after its module cache was cleared (as Jest does) loads',
    code: `
      const a = require('nestjs-concurrency');
      for (const key of Object.keys(require.cache)) if (key.includes('nestjs-concurrency')) delete require.cache[key];
      const b = require('nestjs-concurrency');
      report([a !== b && a.FanOut !== b.FanOut, typeof b.ConcurrencyModule]);`,
    expect: (out) => JSON.stringify(out) === JSON.stringify([true, 'function']),
  },
  {
    name: 'require() of the testing subpath gets the CommonJS build, sharing its classes with the package',
    code: `
      require('reflect-metadata');
      const main = require('nestjs-concurrency');
      const kit = require('nestjs-concurrency/testing');
      const cjs = require.resolve('nestjs-concurrency/testing').replaceAll('\\\\', '/').endsWith('/dist/cjs/testing/index.js');
      const types = Reflect.getMetadata('design:paramtypes', kit.ConcurrencyTester) ?? [];
      report([cjs, types.includes(main.FanOut), types.includes(main.JobRegistry), typeof kit.ConcurrencyTestingModule.forRoot]);`,
    expect: (out) => JSON.stringify(out) === JSON.stringify([true, true, true, 'function']),
  },
  {
    name: 'import of the testing subpath gets the ES module build, sharing its classes with the package',
    code: `
      await import('reflect-metadata');
      const main = await import('nestjs-concurrency');
      const kit = await import('nestjs-concurrency/testing');
      const esm = import.meta.resolve('nestjs-concurrency/testing').endsWith('/dist/testing/index.js');
      const types = Reflect.getMetadata('design:paramtypes', kit.ConcurrencyTester) ?? [];
      report([esm, types.includes(main.FanOut), types.includes(main.JobRegistry), typeof kit.ConcurrencyTestingModule.forRoot]);`,
    expect: (out) => JSON.stringify(out) === JSON.stringify([true, true, true, 'function']),
  },
  {
    name: 'the testing subpath of the other build is refused: import of the package, then require() of its testing entry',
    code: `
      await import('nestjs-concurrency');
      let outcome;
      try { require('nestjs-concurrency/testing'); outcome = 'loaded'; } catch (error) { outcome = 'refused: ' + error.message; }
      report([outcome]);`,
    expect: ([outcome]) => outcome.startsWith(refusal('CommonJS', 'ES module')),
  },
  {
    name: 'the testing entry alone counts as a load: import of it, then require() of the package is refused',
    code: `
      const kit = await import('nestjs-concurrency/testing');
      report([typeof kit.ConcurrencyTester, await attempt('require')]);`,
    expect: ([type, second]) => type === 'function' && second.startsWith(refusal('CommonJS', 'ES module')),
  },
];

let failed = 0;
for (const { name, code, expect } of scenarios) {
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', prelude + code], { cwd, encoding: 'utf8' });
  const line = child.stdout.trim().split('\n').at(-1) ?? '';
  let out;
  try {
    out = JSON.parse(line);
  } catch {
    out = undefined;
  }
  const ok = child.status === 0 && out !== undefined && expect(out);
  if (!ok) failed++;
  console.log(
    `${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : `\n     exit ${child.status}, printed: ${line}\n${child.stderr}`}`,
  );
}
if (failed > 0) process.exit(1);
