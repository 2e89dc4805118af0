import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests import the package by its name, as users do; resolve it to the sources so no build is needed first.
    // The subpath first: an alias also matches ids that start with its key and a '/'.
    alias: {
      'nestjs-concurrency/testing': fileURLToPath(new URL('./lib/testing/index.ts', import.meta.url)),
      'nestjs-concurrency': fileURLToPath(new URL('./lib/index.ts', import.meta.url)),
    },
  },
  test: {
    globals: true,
    root: './',
    include: ['test/**/*.spec.ts', 'test/**/*.e2e-spec.ts'],
    // test/compat/ holds consumer apps with their own dependencies and test runners (test/compat/run.sh).
    exclude: [...configDefaults.exclude, 'test/compat/**'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
