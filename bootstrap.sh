#!/bin/sh
# Sets up a fresh Debian machine for eventfold: installs what is missing, then
# regenerates the build system and configures. Safe to run again.
set -eu
cd "$(dirname "$0")"

PKGS="build-essential autoconf autoconf-archive automake libtool pkg-config \
 libfcgi-dev libyajl-dev liblmdb-dev libisal-dev libxxhash-dev uuid-dev check \
 nginx spawn-fcgi python3 curl wrk lmdb-utils valgrind gnuplot-nox \
 debhelper dpkg-dev lintian rpm fakeroot clang libclang-rt-14-dev btrfs-progs \
 libnats-dev nats-server librdkafka-dev kcat python3-jsonschema python3-yaml chromium \
 postgresql postgresql-contrib"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap.sh: missing packages:$missing (run as root, or install them)" >&2
    exit 1
  fi
  echo "bootstrap.sh: installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
  # The distribution's nginx service must not hold port 80 or 8080 for our private instances;
  # nor need the cluster Debian's postgresql creates run: `make bench` starts a private one
  # (bench/pg_bench.py: initdb, postgres and pgbench from /usr/lib/postgresql/*/bin).
  if command -v service >/dev/null 2>&1; then
    service nginx stop >/dev/null 2>&1 || true
    service postgresql stop >/dev/null 2>&1 || true
  fi
fi

autoreconf -fi
./configure ${CONFIGURE_FLAGS:-}
# Redocly CLI (pinned, from npm's registry) for `make doc` and the lint of doc/openapi.yaml
# in `make check`; it needs Node.js >= 20.19, which Debian 12 does not ship (its nodejs is
# 18): without it those two tests are skipped with a message, and the structural check of
# the document (tests/doc/test_openapi_structure.py) still runs.
make node-tools || echo "bootstrap.sh: no Redocly CLI (see above); make doc and the redocly lint test will be skipped"
