#!/bin/sh
# Prints the version of the checked-out tree, in a form Debian orders
# right: the tag (v1.2.3 -> 1.2.3, v1.3.0-rc1 -> 1.3.0~rc1), +gitN.HASH
# for N commits after it; without a tag 0~gitDATETIME.HASH, ordered by the
# commit's UTC time. +dirty when tracked files differ from the commit.
# `make` stamps it into both binaries, the man pages and the package.
set -eu
cd "$(dirname "$0")/.."
hash=$(git rev-parse --short=7 HEAD)
if tag=$(git describe --tags --match 'v[0-9]*' --abbrev=0 2>/dev/null); then
    v=$(printf '%s' "${tag#v}" | tr - '~')
    n=$(git rev-list --count "$tag..HEAD")
    if [ "$n" -gt 0 ]; then
        v="$v+git$n.$hash"
    fi
else
    v="0~git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$hash"
fi
if ! git diff --quiet HEAD --; then
    v="$v+dirty"
fi
printf '%s\n' "$v"
