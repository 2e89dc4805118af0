#!/usr/bin/env bash
# Proves the packed package works for a Nest 11 CommonJS + Jest app and a Nest 12 ES module + vitest app, as their
# users install it: npm pack, a plain `npm install` of the tarball (no --legacy-peer-deps) into a temporary copy of
# each app under test/compat/, a typecheck with skipLibCheck: false, a build, a boot polled over HTTP (smoke.mjs),
# the app's own e2e test, and the dual-package check (dual-load.mjs). Then the library's specs on Nest 11.
#
#   bash test/compat/run.sh            everything
#   COMPAT_SKIP_NEST11_SUITE=1 ...     without the library's suite on Nest 11
#   COMPAT_NEST11_FULL=1 ...           the whole suite on Nest 11, not only the specs that go through Nest
#   COMPAT_PACK_BUILT=1 ...            pack the dist/ already built (no prepack build)
#   COMPAT_KEEP=1 ...                  keep the temporary folder (its path is printed)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ "${COMPAT_KEEP:-}" = "1" ]; then echo "compat: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

started=$SECONDS
step() { printf '\n==> compat [%ss]: %s\n' "$((SECONDS - started))" "$*"; }
npm_install() { npm install --no-audit --no-fund --loglevel=error "$@"; }
free_port() { node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'; }

# Boots `node dist/main.js` in the current folder and polls it until every pattern has shown it works.
boot_and_poll() {
  local port log
  port="$(free_port)"
  log="$work/boot-$(basename "$PWD").log"
  PORT="$port" node dist/main.js >"$log" 2>&1 &
  server_pid=$!
  if ! node "$here/smoke.mjs" "http://127.0.0.1:$port" "$server_pid"; then
    echo "--- app log"; cat "$log"; exit 1
  fi
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=""
}

# A copy of a consumer app in the temporary folder, with the tarball installed by a plain `npm install`.
install_app() {
  local app="$1"
  mkdir -p "$work/$app"
  (cd "$here/$app" && tar --exclude=node_modules --exclude=dist --exclude='*.tsbuildinfo' -cf - .) | tar -xf - -C "$work/$app"
  cd "$work/$app"
  npm_install "$tarball"
}

step "the apps' src/docs/ are the documentation's samples, verbatim"
bash "$here/docs-samples.sh"

# COMPAT_PACK_BUILT=1 packs the dist/ that is there (CI has just built it) instead of building again in prepack.
pack_flags=(--silent --pack-destination "$work")
[ "${COMPAT_PACK_BUILT:-}" = "1" ] && pack_flags+=(--ignore-scripts)
step "npm pack ${pack_flags[*]:3}"
tarball="$work/$(cd "$repo" && npm pack "${pack_flags[@]}" | tail -n 1)"
tar -tzf "$tarball" >"$work/files.txt"
for file in dist/index.js dist/index.d.ts dist/cjs/index.js dist/cjs/index.d.ts dist/cjs/package.json \
  dist/testing/index.js dist/testing/index.d.ts dist/cjs/testing/index.js dist/cjs/testing/index.d.ts; do
  grep -qx "package/$file" "$work/files.txt" || { echo "the tarball lacks $file"; exit 1; }
done
echo "$tarball ($(wc -l <"$work/files.txt") files)"

# ---------------------------------------------------------------------------------------------------------------
step "nest11-cjs-jest: npm install (Nest 11, CommonJS, Jest 30 + ts-jest, TypeScript 5.7)"
install_app nest11-cjs-jest

step "nest11-cjs-jest: tsc, skipLibCheck false, module commonjs / node16 / nodenext"
# The three at once (each is a full check of every declaration file the app sees; about 20 s alone).
modules=(commonjs node16 nodenext)
typecheck_pids=()
for module in "${modules[@]}"; do
  resolution=()
  [ "$module" = commonjs ] || resolution=(--moduleResolution "$module")
  npx tsc -p tsconfig.json --noEmit --incremental false --skipLibCheck false --module "$module" "${resolution[@]}" \
    >"$work/tsc-$module.log" 2>&1 &
  typecheck_pids+=("$!")
done
typecheck_failed=0
for i in "${!modules[@]}"; do
  if wait "${typecheck_pids[$i]}"; then
    echo "ok  module ${modules[$i]}"
  else
    typecheck_failed=1
    echo "FAIL module ${modules[$i]}:"
    cat "$work/tsc-${modules[$i]}.log"
  fi
done
[ "$typecheck_failed" = 0 ]

step "nest11-cjs-jest: ts-node typechecks and loads the package"
npx ts-node -e 'import { ConcurrencyModule } from "nestjs-concurrency"; if (typeof ConcurrencyModule.forRoot !== "function") process.exit(1);'

step "nest11-cjs-jest: build, boot, poll every pattern"
npm run build --silent
boot_and_poll

step "nest11-cjs-jest: its e2e tests with Jest 30 (plain ts-jest transform), the testing kit's included"
npm run test:e2e --silent

step "nest11-cjs-jest: its e2e test with Jest 29"
npm_install --no-save jest@^29.7.0 @types/jest@^29.5.8 jest-util@^29.7.0
npx jest --version
npm run test:e2e --silent

step "nest11-cjs-jest: dual-package check (Nest 11)"
node "$here/dual-load.mjs" "$PWD"

# ---------------------------------------------------------------------------------------------------------------
step "nest12-esm-vitest: npm install (Nest 12, ES modules, vitest 4, TypeScript 6)"
install_app nest12-esm-vitest

step "nest12-esm-vitest: tsc, skipLibCheck false, module nodenext"
npx tsc -p tsconfig.json --noEmit --incremental false --skipLibCheck false

step "nest11-cjs-jest: TypeScript 6 (the nest12 app's), skipLibCheck false, module node18 (new in TypeScript 5.8)"
# TypeScript 6 deprecates the tsconfig's baseUrl and no longer includes every @types package by default.
(cd "$work/nest11-cjs-jest" && "$work/nest12-esm-vitest/node_modules/.bin/tsc" -p tsconfig.json --noEmit --incremental false \
  --skipLibCheck false --module node18 --ignoreDeprecations 6.0 --types node,jest)

step "nest12-esm-vitest: build, boot, poll every pattern"
npm run build --silent
boot_and_poll

step "nest12-esm-vitest: its e2e tests with vitest, the testing kit's included"
npm run test:e2e --silent

step "nest12-esm-vitest: dual-package check (Nest 12)"
node "$here/dual-load.mjs" "$PWD"

# ---------------------------------------------------------------------------------------------------------------
# The whole suite on Nest 11 takes as long as on Nest 12 (2-3 minutes) and does not fit CI's budget with the rest. So CI
# runs every spec that goes through Nest or its modules (module, injection, lifecycle, the @nestjs/schedule and
# @nestjs/cache-manager drop-ins, the HTTP e2e specs on Express and Fastify), and leaves out the specs of engines that
# never touch a Nest API: cron arithmetic and drift (dst, time-and-coordination), Redis lock races (cluster), the
# supervisor and fan-out engines, worker threads, BullMQ jobs. COMPAT_NEST11_FULL=1 runs everything.
nest11_engine_only=(
  test/scheduling/dst.spec.ts
  test/scheduling/time-and-coordination.spec.ts
  test/scheduling/cluster.spec.ts
  test/supervisor/task-supervisor.spec.ts
  test/supervisor/hostile-values.spec.ts
  'test/fan-out/fan-out-{map,settle,stream,tasks,hardening,workers}.spec.ts'
  test/durable/durable.spec.ts
)
# Nest 11 answers a handler's async iterable with `{}` (Nest 12 streams it), so this spec's last check, that the two
# bodies differ, is Nest 12's; its point (the iterable is never stored: BYPASS, the handler runs twice) is not.
nest11_differs='never stores an async iterable a handler returns'
if [ "${COMPAT_SKIP_NEST11_SUITE:-}" != "1" ]; then
  nest11_args=(--testNamePattern "^(?!.*$nest11_differs)")
  which="every spec"
  if [ "${COMPAT_NEST11_FULL:-}" != "1" ]; then
    which="the specs that go through Nest"
    for spec in "${nest11_engine_only[@]}"; do nest11_args+=(--exclude "$spec"); done
  fi
  step "the library's suite on Nest 11 dev dependencies: $which"
  bash "$here/nest11-suite.sh" "$work/nest11-suite" "${nest11_args[@]}"
fi

step "passed"
