#!/usr/bin/env python3
"""Counts include cycles in src/ at three levels, from the #include "..." lines:

  file       a file includes a header (only headers including headers can form a cycle)
  module     a .c/.h pair is one node, with the module's private header (X_int.h,
             X_internal.h); tailer.c including rebuild.h and rebuild.c including tailer.h
             is a cycle: neither module can be read, built or tested alone
  directory  src/X is one node (the rooms of the source map)

For each level it prints the number of elementary cycles and the cycles themselves
(--quiet: the counts only). Exit status 1 when any cycle is found, so that a check can
call it.  Usage: scripts/include-cycles.py [--quiet] [SRC_DIR]
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def scan(src):
    """Edges file -> included file, as paths relative to src (includes that name no file
    under src, such as config.h, are left out)."""
    edges = {}
    for root, _, names in os.walk(src):
        for name in names:
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, src)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            targets = set()
            for inc in INCLUDE.findall(text):
                for cand in (inc, os.path.join(os.path.dirname(rel), inc)):
                    if os.path.isfile(os.path.join(src, cand)):
                        targets.add(os.path.normpath(cand))
                        break
            edges[rel] = targets
    return edges


def module(path):
    base = os.path.splitext(path)[0]
    return re.sub(r"_(int|internal)$", "", base)


def collapse(edges, key):
    graph = {}
    for a, bs in edges.items():
        ka = key(a)
        graph.setdefault(ka, set())
        for b in bs:
            kb = key(b)
            graph.setdefault(kb, set())
            if kb != ka:
                graph[ka].add(kb)
    return graph


def cycles(graph, limit=10000):
    """Elementary cycles, each reported once: started from its smallest node."""
    found = []
    nodes = sorted(graph)
    for start in nodes:
        stack = [(start, iter(sorted(graph[start])))]
        path, on_path = [start], {start}
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            if nxt == start:
                found.append(list(path))
                if len(found) >= limit:
                    return found
            elif nxt > start and nxt not in on_path:
                path.append(nxt)
                on_path.add(nxt)
                stack.append((nxt, iter(sorted(graph[nxt]))))
    return found


def main(argv):
    quiet = "--quiet" in argv
    args = [a for a in argv if a != "--quiet"]
    src = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    edges = scan(src)
    levels = [
        ("file", collapse(edges, lambda p: p)),
        ("module", collapse(edges, module)),
        ("directory", collapse(edges, lambda p: p.split(os.sep)[0])),
    ]
    total = 0
    for name, graph in levels:
        found = cycles(graph)
        total += len(found)
        print("%s: %d cycles (%d nodes)" % (name, len(found), len(graph)))
        if not quiet:
            for c in found:
                print("  " + " -> ".join(c + [c[0]]))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
