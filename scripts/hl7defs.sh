#!/usr/bin/env bash
# Regenerates libs/hl7v2/defs (defs.bin.gz, VERSIONS.md, CROSSCHECK.md) from
# its machine-readable sources, fetched from
# the package registries (PyPI through pip, npm through npm pack) at pinned
# versions and checked against pinned SHA-256 sums.
#
#   scripts/hl7defs.sh            regenerate in place
#   scripts/hl7defs.sh --check    fail if the committed files differ
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# Outside the checkout: CI runs in a fresh clone, where a cache inside it is
# always empty.
cache="${HL7BUS_DEFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hl7bus/hl7defs}"
out="$top/libs/hl7v2/defs"
mkdir -p "$cache"

HL7APY=hl7apy-1.3.5-py2.py3-none-any.whl
HL7APY_SHA=c8b80ff5ad020bf9c1e68a6395cf45cb78db621f65569d1798c46eb1b657e27b
DICT=hl7-dictionary-1.0.1.tgz
DICT_SHA=a23751c26d83a897fe5734ca198555c13c0d306d78b5578b103f0d63198182ef
TERM=hl7.terminology.r4-7.0.1.tgz
TERM_SHA=170c546f761fb51b3355788ca500206f6b772b21c57348c29205de85a6612baa

fetch() { # file sha command...
  local file=$1 sha=$2
  shift 2
  if [ ! -f "$cache/$file" ] || ! echo "$sha  $cache/$file" | sha256sum -c --quiet - 2>/dev/null; then
    (cd "$cache" && "$@" >/dev/null)
  fi
  echo "$sha  $cache/$file" | sha256sum -c --quiet - || { echo "checksum mismatch for $file" >&2; exit 1; }
}
fetch "$HL7APY" "$HL7APY_SHA" python3 -m pip download --quiet --no-deps --only-binary=:all: hl7apy==1.3.5 -d .
fetch "$DICT" "$DICT_SHA" npm pack --silent hl7-dictionary@1.0.1
fetch "$TERM" "$TERM_SHA" npm pack --silent hl7.terminology.r4@7.0.1

target=$out
if [ "${1:-}" = "--check" ]; then
  target=$(mktemp -d)
  trap 'rm -rf "$target"' EXIT
fi
(cd "$top/libs" && go run ./hl7v2/defs/internal/gen \
  -hl7apy "$cache/$HL7APY" -dictionary "$cache/$DICT" -terminology "$cache/$TERM" -out "$target")

if [ "${1:-}" = "--check" ]; then
  status=0
  for f in "$target"/*; do
    name=$(basename "$f")
    cmp -s "$f" "$out/$name" && continue
    # The data file is gzip: a Go release that changed compress/flate would
    # change its bytes but not its content, which is what is checked.
    if [ "$name" = defs.bin.gz ] && [ -f "$out/$name" ] &&
      cmp -s <(gzip -dc "$f") <(gzip -dc "$out/$name"); then
      echo "note: libs/hl7v2/defs/$name compresses differently with this Go (same content)" >&2
      continue
    fi
    echo "libs/hl7v2/defs/$name is not what the generator makes; run scripts/hl7defs.sh" >&2
    status=1
  done
  # The definitions were Go source (zz_*.go) before they became a data file.
  for f in "$out"/zz_*.go; do
    [ -e "$f" ] || continue
    echo "$f is no longer generated; delete it" >&2
    status=1
  done
  exit $status
fi
