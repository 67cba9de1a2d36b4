#!/usr/bin/env bash
# Builds the console's bundle: installs the pinned npm packages (npm ci, from
# package-lock.json) and bundles src/main.js with esbuild into dist/console.js, which is
# committed and embedded in the server binary (crates/server/src/console.rs), so running
# the server needs no node. `build.sh OUT` writes the bundle to OUT instead (check.sh).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

out=${1:-dist/console.js}
mkdir -p "$(dirname "$out")"
# --main-fields: the AWS SDK's browser builds (fetch, WebCrypto), not its Node ones.
# --define:global: code that reads Node's `global` gets the page's globalThis.
# --legal-comments=none and no sourcemap: the bundle is byte-for-byte reproducible.
./node_modules/.bin/esbuild src/main.js --bundle --format=iife --target=chrome110,firefox115,safari16 \
  --main-fields=browser,module,main --define:global=globalThis --minify --legal-comments=none \
  --outfile="$out.tmp" --log-level=warning
mv "$out.tmp" "$out"
