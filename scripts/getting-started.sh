#!/usr/bin/env bash
# Runs README.md's "Getting started" block as written, in this checkout, as a newcomer would type it.
# The one liberty: `npm install -g` goes to a private prefix, so that CI does not change the machine's npm.
set -euo pipefail
cd "$(dirname "$0")/.."
block=$(awk '/<!-- getting-started:/ { marked = 1; next } marked && /^```bash$/ { inside = 1; next } inside && /^```$/ { exit } inside { print }' README.md)
if [ -z "$block" ]; then
  echo "getting-started: no bash block after the <!-- getting-started: --> marker in README.md" >&2
  exit 1
fi
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
export npm_config_prefix="$prefix" PATH="$prefix/bin:$PATH"
echo "getting-started: running README.md's block:"
printf '%s\n' "$block" | sed 's/^/  | /'
bash -euo pipefail -c "$block"
