#!/usr/bin/env python3
"""`redocly lint` of doc/openapi.yaml with the project's redocly.yaml (the recommended rules):
an error or a warning fails. Redocly CLI is the pinned one `make node-tools` installs into the
build tree (bootstrap.sh runs it where Node.js is recent enough); where it is not installed
the test is skipped, saying so, and tests/doc/test_openapi_structure.py still checks the
document's structure. No network: the lint reads only the document."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("EF_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("EF_BUILDDIR") or os.getcwd()
REDOCLY = os.path.join(BUILDDIR, "node", "node_modules", ".bin", "redocly")


def main():
    if not os.access(REDOCLY, os.X_OK):
        print("SKIP: Redocly CLI is not installed in %s (run 'make node-tools'; it needs npm and "
              "Node.js >= 20.19)" % REDOCLY)
        sys.exit(77)
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true", NO_COLOR="1")
    p = subprocess.run([REDOCLY, "lint", "--format", "stylish", "--config",
                        os.path.join(SRCDIR, "redocly.yaml"), os.path.join(SRCDIR, "doc", "openapi.yaml")],
                       capture_output=True, text=True, timeout=120, env=env, cwd=SRCDIR)
    out = p.stdout + p.stderr
    print(out)
    if p.returncode != 0:
        print("FAIL: redocly lint exited %d" % p.returncode)
        sys.exit(1)
    # The stylish format prints one line per problem with its severity; warnings fail too.
    if any(w in out for w in (" warning ", " error ")):
        print("FAIL: redocly lint reported problems")
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
