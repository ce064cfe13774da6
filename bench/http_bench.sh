#!/bin/sh
# http_bench.sh: HTTP load benchmark of eventfold through a private nginx (bench/http_bench.py).
# CreateOrder, GET /api/users/{id} and GET /api/orders/{id} with wrk at 1, 16 and 64
# connections, beside the same run's ceilings (nginx serving a static JSON file of the same
# size; the trivial libfcgi responder bench/fcgi_trivial behind the same nginx), and the
# read-your-writes delay under a steady command load. Needs wrk (Debian package wrk).
# Environment: EF_BUILDDIR, EF_SRCDIR, EF_NGINX as for the tests; EF_BENCH_SECONDS (default 5).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "${PYTHON3:-python3}" "$here/http_bench.py" "$@"
