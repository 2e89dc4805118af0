#!/usr/bin/env bash
# The compat apps' src/docs/*.ts are the documentation's samples, verbatim: fails when a page's sample changed and the
# copies were not updated (copy the block again, below the first comment line).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
status=0
for file in "$here"/*/src/docs/*.ts; do
  page="$(head -n 1 "$file" | sed -n 's/^\/\/ Verbatim from \(docs\/[a-z-]*\.md\).*/\1/p')"
  body="$(tail -n +2 "$file")"
  if ! node -e '
    const [page, body] = process.argv.slice(1);
    const md = require("node:fs").readFileSync(page, "utf8");
    const blocks = [...md.matchAll(/^```ts\n([\s\S]*?)^```\n/gm)].map((m) => m[1].trimEnd());
    process.exit(blocks.includes(body.trimEnd()) ? 0 : 1);
  ' "$here/../../$page" "$body"; then
    echo "docs-samples: ${file#"$here"/} is no longer a sample of $page"
    status=1
  fi
done
[ "$status" = 0 ] && echo "docs-samples: the compat apps' copies match their pages"
exit "$status"
