#!/usr/bin/env bash
# Builds the browser-attendee test page: installs the pinned npm packages (npm ci, from
# package-lock.json) and bundles app.js with esbuild into page/dist/app.js.
# Idempotent and quick when nothing changed: npm ci runs only when node_modules is older
# than package-lock.json, the bundle only when an input is newer than it.
set -euo pipefail
cd "$(dirname "$0")/page"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

out=dist/app.js
if [ ! -f "$out" ] || [ -n "$(find app.js package-lock.json -newer "$out" 2>/dev/null)" ]; then
  # --main-fields: the SDK's CommonJS build require()s the AWS SDK clients, and for a
  # require() esbuild would otherwise pick their Node "main" builds (node:fs, node:https).
  # --define:global: the SDK reads Node's `global` (CSPMonitor); in a page it is globalThis.
  mkdir -p dist
  ./node_modules/.bin/esbuild app.js --bundle --format=iife --target=chrome110 --main-fields=browser,module,main --define:global=globalThis \
    --outfile="$out.tmp" --log-level=warning
  mv "$out.tmp" "$out"
fi
