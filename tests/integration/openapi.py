"""openapi: checks HTTP answers against doc/openapi.yaml.

The integration harness hands every answer it receives to Checker.check() (harness.py,
Client.request and fcgi_request), so every test, present and future, checks the document
against what the programs really answer: the status must be declared for the operation, the
headers eventfold sets (Log-Position, ETag, Retry-After, Allow) must be present where declared
required, absent where not declared, and valid; the Content-Type must be one the answer
declares; and a JSON body must validate against its schema (JSON Schema 2020-12, which
OpenAPI 3.1 uses; answers declare `additionalProperties: false`, so an undeclared field fails).

A request that matches no operation is checked against the document's `x-eventfold-unrouted`
answers, and any request may also get one of `x-eventfold-any-request` (nginx's 413, 502, 504).
HEAD is checked as GET without a body.

Needs python3-yaml and python3-jsonschema (>= 4.0, for Draft 2020-12). `$ref`s are resolved
inside the document only (no network): each is replaced by a copy of its target before any
schema is compiled, so the result does not depend on the jsonschema version's ref resolver.
"""

import copy
import json
import os
import re

try:
    import yaml
except ImportError:  # reported by load(), with what to install
    yaml = None
try:
    import jsonschema
    from jsonschema import Draft202012Validator
except ImportError:
    jsonschema = None

# Headers that eventfold sets itself: present only where the document declares them.
OWN_HEADERS = ("log-position", "etag", "retry-after", "allow")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class SpecError(Exception):
    """The document cannot be loaded or a $ref does not resolve."""


def load(path):
    if yaml is None:
        raise SpecError("python3-yaml is not installed (bootstrap.sh installs it)")
    if jsonschema is None:
        raise SpecError("python3-jsonschema is not installed (bootstrap.sh installs it)")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def pointer(doc, ref):
    """The node a local reference ("#/a/b") names; SpecError if it names nothing."""
    if not ref.startswith("#/"):
        raise SpecError("only local references are supported: %r" % ref)
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SpecError("unresolved $ref %r (no %r)" % (ref, part))
    return node


def resolve(doc, node=None, stack=()):
    """A copy of node (default: the whole document) with every $ref replaced by its target,
    itself resolved. A $ref's sibling keywords (allowed in OpenAPI 3.1) are kept beside the
    target's. A cycle is a SpecError (the document has none; the checker needs none)."""
    if node is None:
        node = doc
    if isinstance(node, list):
        return [resolve(doc, x, stack) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node and isinstance(node["$ref"], str):
        ref = node["$ref"]
        if ref in stack:
            raise SpecError("$ref cycle: %s" % " -> ".join(stack + (ref,)))
        target = resolve(doc, pointer(doc, ref), stack + (ref,))
        rest = {k: resolve(doc, v, stack) for k, v in node.items() if k != "$ref"}
        if not rest:
            return target
        if isinstance(target, dict) and not (set(rest) & set(target)):
            merged = dict(target)
            merged.update(rest)
            return merged
        return {"allOf": [target], **rest}
    return {k: resolve(doc, v, stack) for k, v in node.items()}


def _template_regex(template):
    parts = re.split(r"(\{[^}/]+\})", template)
    rx = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile("^" + rx + "$")


class Checker:
    """Checks answers against one OpenAPI document. Thread-safe after construction (the
    validator cache only ever gains entries; a race compiles one twice)."""

    def __init__(self, path):
        raw = load(path)
        self.doc = resolve(raw)
        self.routes = []  # (regex, template, path item)
        for template, item in self.doc.get("paths", {}).items():
            self.routes.append((_template_regex(template), template, item))
        # Literal paths before templated ones, then longer first: /api/users before
        # /api/users/{user_id}.
        self.routes.sort(key=lambda r: ("{" in r[1], -len(r[1])))
        self.unrouted = self.doc.get("x-eventfold-unrouted", {})
        self.any_request = self.doc.get("x-eventfold-any-request", {})
        self._validators = {}
        self.checked = 0

    def operation(self, method, path):
        """(template, operation) for a request, or (None, None) when no operation takes it."""
        m = method.lower()
        if m == "head":
            m = "get"
        for rx, template, item in self.routes:
            if rx.match(path):
                op = item.get(m) if m in METHODS else None
                if op is not None:
                    return template, op
        return None, None

    def _validator(self, schema):
        v = self._validators.get(id(schema))
        if v is None:
            v = Draft202012Validator(schema)
            self._validators[id(schema)] = (v, schema)  # keep schema alive: id() stays unique
            return v
        return v[0]

    def responses_for(self, method, path, wrong_side=False):
        """The declared answers for a request: {status string: response object}, and a label."""
        template, op = (None, None) if wrong_side else self.operation(method, path)
        declared = dict(self.any_request)
        if op is None:
            declared.update(self.unrouted)
            label = "%s %s (no operation: x-eventfold-unrouted)" % (method, path)
        else:
            declared.update(op.get("responses", {}))
            label = "%s %s (%s)" % (method, template, op.get("operationId", "?"))
        return declared, label

    def check(self, method, target, status, headers, body, wrong_side=False):
        """Returns a list of mismatches (empty when the answer is as documented). target is
        the request target (path and query), headers a dict of lower-case names."""
        path = target.split("?", 1)[0]
        declared, label = self.responses_for(method, path, wrong_side)
        self.checked += 1
        resp = declared.get(str(status))
        if resp is None:
            return ["%s: status %d is not declared (declared: %s)"
                    % (label, status, ", ".join(sorted(declared)))]
        errs = []
        hdecl = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
        for name, h in hdecl.items():
            value = headers.get(name)
            if value is None:
                if h.get("required"):
                    errs.append("%s %d: header %s missing" % (label, status, name))
                continue
            errs += self._check_header(label, status, name, value, h.get("schema") or {})
        for name in OWN_HEADERS:
            if name in headers and name not in hdecl:
                errs.append("%s %d: header %s: %r is not declared"
                            % (label, status, name, headers[name]))
        content = resp.get("content") or {}
        ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if method.upper() == "HEAD":
            if content and ctype not in content:
                errs.append("%s %d: Content-Type %r, declared: %s"
                            % (label, status, ctype, ", ".join(content)))
            return errs
        if not content:
            if body:
                errs.append("%s %d: a body where none is declared: %r" % (label, status, body[:200]))
            return errs
        media = content.get(ctype)
        if media is None:
            errs.append("%s %d: Content-Type %r, declared: %s"
                        % (label, status, ctype, ", ".join(content)))
            return errs
        schema = media.get("schema")
        if ctype.endswith("json"):
            try:
                value = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                return errs + ["%s %d: body is not JSON (%s): %r" % (label, status, e, body[:200])]
        else:
            try:
                value = body.decode("utf-8")
            except UnicodeDecodeError as e:
                return errs + ["%s %d: body is not UTF-8 text (%s)" % (label, status, e)]
        if schema is not None:
            for e in sorted(self._validator(schema).iter_errors(value), key=lambda e: list(e.path)):
                where = "/".join(str(p) for p in e.absolute_path) or "(body)"
                errs.append("%s %d: %s: %s" % (label, status, where, _short(e)))
        return errs

    def _check_header(self, label, status, name, value, schema):
        v = value.strip()
        if schema.get("type") == "integer":
            if not re.fullmatch(r"[0-9]+", v):
                return ["%s %d: header %s: %r is not an integer" % (label, status, name, value)]
            v = int(v)
        errs = []
        for e in self._validator(schema).iter_errors(v):
            errs.append("%s %d: header %s: %s" % (label, status, name, _short(e)))
        return errs


def _short(err):
    """One line for a jsonschema error: for oneOf/anyOf, the alternatives' own reasons."""
    msg = err.message
    if len(msg) > 300:
        msg = msg[:300] + "..."
    if err.context:
        reasons = sorted({c.message[:160] for c in err.context})[:4]
        msg += " [" + "; ".join(reasons) + "]"
    return msg


def default_path():
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.environ.get("EF_SRCDIR") or os.path.normpath(os.path.join(here, "..", ".."))
    return os.path.join(src, "doc", "openapi.yaml")
