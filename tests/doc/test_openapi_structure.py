#!/usr/bin/env python3
"""A structural check of doc/openapi.yaml that needs only python3-yaml and python3-jsonschema,
so that it runs everywhere `make check` runs (Redocly's lint, tests/doc/test_openapi_lint.py,
needs a recent Node.js that Debian 12 does not ship):

- it is OpenAPI 3.1 and every $ref resolves inside the document;
- every component is referenced somewhere (the x-eventfold-* maps count);
- operationIds are unique; every operation has a 2xx answer and a 4xx or 5xx answer; every
  {param} of a path is declared `in: path`, required, and every path parameter declared is in
  the path; every header parameter is one the API defines;
- every problem code is in the ProblemCode enum, has its Problem_CODE schema, and some answer
  uses it; every problem answer of an operation allows only codes of its status;
- every object schema with properties says additionalProperties: false, and every schema
  is a valid JSON Schema 2020-12;
- doc/api.md names every route and every problem code of the document.
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("EF_SRCDIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
import openapi  # noqa: E402

HEADER_PARAMS = {"Min-Position", "Prefer", "If-Match", "Idempotency-Key"}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, flush=True)


def walk(node, path=""):
    """(json pointer, node) for every dict in the document."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, path + "/" + str(k).replace("~", "~0").replace("/", "~1"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, "%s/%d" % (path, i))


def check_refs(doc):
    refs = set()
    for where, node in walk(doc):
        ref = node.get("$ref")
        if isinstance(ref, str):
            refs.add(ref)
            try:
                openapi.pointer(doc, ref)
            except openapi.SpecError as e:
                fail("%s: %s" % (where, e))
    for kind, comps in doc.get("components", {}).items():
        if not isinstance(comps, dict) or kind.startswith("x-"):
            continue
        for name in comps:
            if "#/components/%s/%s" % (kind, name) not in refs:
                fail("components/%s/%s is never referenced" % (kind, name))
    return refs


def problem_codes_of(schema, doc, seen=()):
    """The problem codes a (raw) response schema allows: the Problem_CODE schemas it reaches."""
    codes = set()
    for _, node in walk(schema):
        ref = node.get("$ref", "")
        m = re.fullmatch(r"#/components/schemas/Problem_([a-z_]+)", ref)
        if m:
            codes.add(m.group(1))
        elif ref.startswith("#/components/schemas/") and ref not in seen and ref != "#/components/schemas/Problem":
            codes |= problem_codes_of(openapi.pointer(doc, ref), doc, seen + (ref,))
    return codes


def check_operations(doc):
    ids = set()
    used_codes = set()
    for template, item in doc["paths"].items():
        names = set(re.findall(r"\{([^}]+)\}", template))
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            label = "%s %s" % (method.upper(), template)
            oid = op.get("operationId")
            if not oid or oid in ids:
                fail("%s: operationId %r missing or not unique" % (label, oid))
            ids.add(oid)
            params = [openapi.resolve(doc, p) for p in op.get("parameters", []) + item.get("parameters", [])]
            declared = {p["name"] for p in params if p.get("in") == "path"}
            for p in params:
                if p.get("in") == "path" and not p.get("required"):
                    fail("%s: path parameter %s is not required" % (label, p["name"]))
                if p.get("in") == "header" and p["name"] not in HEADER_PARAMS:
                    fail("%s: header parameter %s is not one the API defines" % (label, p["name"]))
            if declared != names:
                fail("%s: path parameters declared %r, in the path %r" % (label, sorted(declared), sorted(names)))
            responses = op.get("responses") or {}
            if not any(s.startswith("2") for s in responses):
                fail("%s: no 2xx answer" % label)
            if not any(s[0] in "45" for s in responses):
                fail("%s: no 4xx or 5xx answer" % label)
            for status, resp in responses.items():
                raw = openapi.pointer(doc, resp["$ref"]) if "$ref" in resp else resp
                media = (raw.get("content") or {}).get("application/problem+json")
                if media is None:
                    if status[0] in "45" and "text/html" not in (raw.get("content") or {}):
                        fail("%s %s: an error answer without a problem document" % (label, status))
                    continue
                codes = problem_codes_of(media["schema"], doc)
                if not codes:
                    fail("%s %s: the problem schema names no Problem_CODE" % (label, status))
                used_codes |= codes
                for code in codes:
                    st = openapi.pointer(doc, "#/components/schemas/Problem_" + code)["properties"]["status"]["const"]
                    if str(st) != status:
                        fail("%s %s: allows %s, whose status is %s" % (label, status, code, st))
    for m in ("x-eventfold-unrouted", "x-eventfold-any-request"):
        for status, resp in doc.get(m, {}).items():
            raw = openapi.pointer(doc, resp["$ref"])
            media = (raw.get("content") or {}).get("application/problem+json")
            if media:
                used_codes |= problem_codes_of(media["schema"], doc)
    return ids, used_codes


def check_problems(doc, used_codes):
    schemas = doc["components"]["schemas"]
    enum = schemas["ProblemCode"]["enum"]
    if len(set(enum)) != len(enum):
        fail("ProblemCode has duplicates")
    per_code = {k[len("Problem_"):] for k in schemas if k.startswith("Problem_")}
    for code in enum:
        if code not in per_code:
            fail("code %s has no Problem_%s schema" % (code, code))
        if code not in used_codes:
            fail("code %s is answered by no operation" % code)
        else:
            props = schemas["Problem_" + code]["properties"]
            if props["code"].get("const") != code or props["type"].get("const") != "/problems/" + code:
                fail("Problem_%s: code/type constants do not name %s" % (code, code))
    for code in per_code - set(enum):
        fail("Problem_%s is not in the ProblemCode enum" % code)
    return enum


def check_schemas(doc):
    for where, node in walk(doc):
        if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
            fail("%s: an object schema with properties but without additionalProperties: false" % where)
    for name, schema in doc["components"]["schemas"].items():
        try:
            openapi.Draft202012Validator.check_schema(openapi.resolve(doc, schema))
        except Exception as e:  # jsonschema.SchemaError; its message says what
            fail("components/schemas/%s is not a valid JSON Schema 2020-12: %s" % (name, str(e)[:300]))


def check_prose(doc, codes):
    with open(os.path.join(SRCDIR, "doc", "api.md"), encoding="utf-8") as f:
        md = f.read()
    for template, item in doc["paths"].items():
        route = re.sub(r"\{[^}]+\}", lambda m: m.group(0), template)
        for method in METHODS:
            if method in item and "%s %s" % (method.upper(), route) not in md:
                fail("doc/api.md does not name %s %s" % (method.upper(), route))
    for code in codes:
        if "`%s`" % code not in md:
            fail("doc/api.md does not name the problem code %s" % code)


def main():
    doc = openapi.load(os.path.join(SRCDIR, "doc", "openapi.yaml"))
    if not str(doc.get("openapi", "")).startswith("3.1."):
        fail("not OpenAPI 3.1: %r" % doc.get("openapi"))
    refs = check_refs(doc)
    ids, used_codes = check_operations(doc)
    codes = check_problems(doc, used_codes)
    check_schemas(doc)
    check_prose(doc, codes)
    print("doc/openapi.yaml: %d paths, %d operations, %d problem codes, %d distinct $refs"
          % (len(doc["paths"]), len(ids), len(codes), len(refs)))
    if failures:
        print("FAIL: %d problems" % len(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
