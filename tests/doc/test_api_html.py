#!/usr/bin/env python3
"""doc/api.html as `make doc` builds it (doc/render-html.sh, Redocly CLI) is a page that works
on its own: it references nothing on the network, and headless Chromium, with networking off
and opened on an operation's anchor, renders that operation: its method and path and its
summary appear in the page's visible text (not just in the document embedded in a script).
Skipped, saying so, where Redocly CLI (make node-tools) or chromium is not installed."""

import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import eftest  # noqa: E402

SRCDIR = os.environ.get("EF_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILDDIR = os.environ.get("EF_BUILDDIR") or os.getcwd()
REDOCLY = os.path.join(BUILDDIR, "node", "node_modules", ".bin", "redocly")
CHROMIUM = os.environ.get("EF_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# (anchor, texts that must be visible once the page has rendered it)
OPERATIONS = [
    ("#tag/Orders/operation/payOrder", ["POST", "/api/orders/{order_id}/pay", "Pay a created order from the wallet"]),
    ("#tag/Events/operation/listEvents", ["GET", "/api/events", "The global log after a position"]),
]


def skip(msg):
    print("SKIP:", msg, flush=True)
    sys.exit(77)


def run(argv, timeout):
    """Runs argv in its own session; on timeout kills that session's process group (by the
    child's PID, eftest.run_program) so no renderer process is left behind."""
    return eftest.run_program(argv, timeout)


def visible_text(html):
    for tag in ("script", "style", "svg"):
        html = re.sub(r"<%s\b.*?</%s>" % (tag, tag), " ", html, flags=re.S | re.I)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def main():
    if not os.access(REDOCLY, os.X_OK):
        skip("Redocly CLI is not installed in %s (run 'make node-tools'; npm, Node.js >= 20.19)" % REDOCLY)
    if not os.access(CHROMIUM, os.X_OK):
        skip("chromium is not installed (Debian: apt-get install chromium; bootstrap.sh installs it)")
    tmp = eftest.tmpdir("doc-html")
    failures = []
    page = os.path.join(tmp, "api.html")
    rc, out, err = run(["sh", os.path.join(SRCDIR, "doc", "render-html.sh"), REDOCLY, SRCDIR, page], 180)
    if rc != 0:
        print(out, err)
        print("FAIL: render-html.sh exited %d" % rc)
        sys.exit(1)
    with open(page, encoding="utf-8") as f:
        html = f.read()
    remote = re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="(https?:[^"]+)"', html)
    remote += re.findall(r'import[^;]*from\s*"(https?:[^"]+)"', html)
    if remote:
        failures.append("the page loads from the network: %r" % remote[:3])
    for anchor, texts in OPERATIONS:
        profile = os.path.join(tmp, "profile")
        rc, dom, err = run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--no-first-run", "--user-data-dir=" + profile,
                            "--virtual-time-budget=15000", "--dump-dom", "file://" + page + anchor], 120)
        eftest.rmtree(profile)
        if rc != 0 or not dom:
            failures.append("chromium %s: exit %d: %s" % (anchor, rc, err[-500:]))
            continue
        text = visible_text(dom)
        missing = [t for t in texts if t not in text]
        if missing:
            failures.append("%s: not rendered: %r (visible text begins %r)" % (anchor, missing, text[:300]))
        else:
            print("rendered %s: %s" % (anchor, " | ".join(texts)), flush=True)
    eftest.rmtree(tmp)
    for f in failures:
        print("FAIL:", f)
    if failures:
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
