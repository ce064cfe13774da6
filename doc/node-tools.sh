#!/bin/sh
# node-tools.sh PREFIX VERSION (make node-tools): installs Redocly CLI VERSION, exactly, into
# PREFIX/node_modules with npm, for `make doc` (doc/api.html) and the lint test of
# doc/openapi.yaml in `make check` (tests/doc/test_openapi_lint.py). Nothing else needs it:
# without it those tests are skipped, with a message.
#
# @redocly/cli 2.x is a single self-contained package (no dependency tree to resolve), so a
# pinned version installs the same bytes every time; it needs Node.js 20.19 or newer (22.12
# or newer from its next releases). Debian 12's own nodejs is 18, too old: then this script
# says so and exits 77, and bootstrap.sh goes on without it.
set -eu
prefix=$1
version=$2
need_major=20
need_minor=19

command -v node >/dev/null 2>&1 || { echo "node-tools.sh: no node (Node.js >= $need_major.$need_minor needed for Redocly CLI $version)" >&2; exit 77; }
command -v npm >/dev/null 2>&1 || { echo "node-tools.sh: no npm" >&2; exit 77; }
v=$(node -p 'process.versions.node')
major=${v%%.*}
rest=${v#*.}
minor=${rest%%.*}
if [ "$major" -lt "$need_major" ] || { [ "$major" -eq "$need_major" ] && [ "$minor" -lt "$need_minor" ]; }; then
    echo "node-tools.sh: Node.js $v is older than $need_major.$need_minor, which Redocly CLI $version needs" >&2
    exit 77
fi
bin="$prefix/node_modules/.bin/redocly"
if [ -x "$bin" ] && [ "$(REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "$bin" --version 2>/dev/null | tail -n 1)" = "$version" ]; then
    exit 0
fi
mkdir -p "$prefix"
# --ignore-scripts: nothing runs at install time; --no-save: no package.json written.
npm install --prefix "$prefix" --no-audit --no-fund --no-save --ignore-scripts --loglevel=error \
    "@redocly/cli@$version"
got=$(REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "$bin" --version 2>/dev/null | tail -n 1)
[ "$got" = "$version" ] || { echo "node-tools.sh: installed redocly says '$got', wanted $version" >&2; exit 1; }
echo "node-tools.sh: Redocly CLI $version in $prefix"
