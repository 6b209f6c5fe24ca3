#!/usr/bin/env bash
# Labeled photos from Debian packages (../shared/FIXTURES.md): data files only, unpacked without
# installing into tests/fixtures/debian/<package>/ (git-ignored). Tests that need them skip,
# naming this script, where they are absent. Needs apt's package lists (apt-get update).
set -euo pipefail
cd "$(dirname "$0")/.."
target=tests/fixtures/debian
packages=(libdlib19.1 labelme-examples)
mkdir -p "$target"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for package in "${packages[@]}"; do
  if [ -d "$target/$package" ]; then continue; fi
  if ! (cd "$work" && apt-get download -qq "$package" 2>/dev/null); then
    apt-get update -qq  # a fresh machine may have no package lists yet
    (cd "$work" && apt-get download -qq "$package" 2>/dev/null)
  fi
  deb=$(ls "$work"/"${package}"_*.deb)
  dpkg-deb -x "$deb" "$work/$package"
  mv "$work/$package" "$target/$package"
  rm -f "$deb"
done
