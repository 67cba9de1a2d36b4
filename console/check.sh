#!/usr/bin/env bash
# Checks that the committed bundle (dist/console.js) is what its sources build to: rebuilds
# it into a temporary file (npm ci from the committed lockfile, the same esbuild) and diffs.
# Run by scripts/test; after changing src/, run console/build.sh and commit dist/.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bash build.sh "$tmp/console.js"
if ! cmp -s "$tmp/console.js" dist/console.js; then
  echo "console/dist/console.js does not match its sources: run console/build.sh and commit it" >&2
  exit 1
fi
echo "console bundle matches its sources"
