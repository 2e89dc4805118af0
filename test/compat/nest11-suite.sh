#!/usr/bin/env bash
# The library's own suite (unit and e2e specs, sources through vitest) against Nest 11: a copy of lib/, test/ and
# sample-app/ in a temporary folder whose devDependencies take the Nest 11 line of every @nestjs package
# (@nestjs/schedule 6, @nestjs/cache-manager 3). Also compiles lib/ against Nest 11's types.
#
#   bash test/compat/nest11-suite.sh <empty folder> [vitest arguments, e.g. a subset of test/]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="$1"
shift
mkdir -p "$dir"

# The Nest 11 line of each @nestjs package the project uses. A package missing here fails the run: add its line.
node - "$repo/package.json" "$dir/package.json" <<'EOF'
const { readFileSync, writeFileSync } = require('node:fs');
const [from, to] = process.argv.slice(2);
const nest11 = {
  '@nestjs/common': '^11.2.10',
  '@nestjs/core': '^11.2.10',
  '@nestjs/platform-express': '^11.2.10',
  '@nestjs/platform-fastify': '^11.2.8',
  '@nestjs/testing': '^11.2.6',
  '@nestjs/schedule': '^6.1.3',
  '@nestjs/cache-manager': '^3.1.3',
  '@nestjs/bullmq': '^11.0.5',
  '@nestjs/terminus': '^11.1.1',
  '@nestjs/config': '^4.0.4',
  '@nestjs/microservices': '^11.2.6',
  '@nestjs/graphql': '^13.4.5',
  '@nestjs/apollo': '^13.4.5',
};
const pkg = JSON.parse(readFileSync(from, 'utf8'));
delete pkg.scripts;
for (const name of Object.keys(pkg.devDependencies)) {
  if (!name.startsWith('@nestjs/')) continue;
  if (!(name in nest11)) throw new Error(`nest11-suite.sh: no Nest 11 version known for ${name}: add it to the map`);
  pkg.devDependencies[name] = nest11[name];
}
writeFileSync(to, JSON.stringify(pkg, null, 2) + '\n');
EOF

cd "$repo"
cp -r lib sample-app docs vitest.config.ts tsconfig.json tsconfig.build.json "$dir"/
mkdir -p "$dir/test"
for entry in test/*; do
  [ "$entry" = test/compat ] || cp -r "$entry" "$dir/test/"
done

cd "$dir"
npm install --no-audit --no-fund --loglevel=error
node -e 'for (const p of ["@nestjs/common", "@nestjs/core", "@nestjs/schedule", "@nestjs/cache-manager"]) console.log(p, require(p + "/package.json").version)'

echo "--- lib/ compiles against Nest 11's types"
npx tsc -p tsconfig.build.json --noEmit

echo "--- vitest $*"
npx vitest run "$@"
