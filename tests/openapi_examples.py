#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Check docs/openapi.yaml's examples against their own schemas.

Every example a client or a gateway may copy must be valid under the
schema beside it, or the document contradicts itself.  This walks the
whole document and validates, with JSON Schema 2020-12 (the dialect of
OpenAPI 3.1), against the schema that governs it:

  - media types (request and response bodies): `example` and every
    `examples.*.value`;
  - parameters and headers: the same;
  - schemas: `examples` (a list) and the deprecated `example`.

References (`$ref: '#/components/...'`) resolve within the document; one
that does not resolve is an error, and so is a JSON request body without
an example.  Exit status 0 if all hold, 1 otherwise, listing every
failure.

Debian 12: python3-yaml, python3-jsonschema (installed by tools/deps.sh).
"""
import sys

import jsonschema
import yaml

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class Checker:
    def __init__(self, doc):
        self.doc = doc
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=doc)
        self.failures = []
        self.checked = 0

    def resolve(self, node):
        """node with a $ref followed, to the object it names."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 16:
            _, node = self.resolver.resolve(node["$ref"])
            seen += 1
        return node

    def validate(self, where, schema, value):
        self.checked += 1
        cls = jsonschema.Draft202012Validator
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as e:
            self.failures.append(f"{where}: bad schema: {e.message}")
            return
        v = cls(schema, resolver=self.resolver,
                format_checker=cls.FORMAT_CHECKER)
        for err in sorted(v.iter_errors(value), key=lambda e: list(e.path)):
            path = "/".join(str(p) for p in err.absolute_path) or "(root)"
            self.failures.append(f"{where}: at {path}: {err.message}")

    def holder(self, where, obj):
        """A media type, parameter or header: its example(s) vs its schema."""
        obj = self.resolve(obj)
        schema = obj.get("schema")
        n = 0
        if "example" in obj:
            if schema is None:
                self.failures.append(f"{where}: example without schema")
            else:
                self.validate(f"{where} example", schema, obj["example"])
            n += 1
        for name, ex in (obj.get("examples") or {}).items():
            ex = self.resolve(ex)
            if "value" not in ex:
                continue
            if schema is None:
                self.failures.append(f"{where}: example without schema")
            else:
                self.validate(f"{where} examples.{name}", schema, ex["value"])
            n += 1
        return n

    def schemas(self, where, node):
        """Every schema's own examples, walking nested schemas too."""
        if isinstance(node, dict):
            if "$ref" not in node:
                for ex in node.get("examples", []) if isinstance(
                        node.get("examples"), list) else []:
                    self.validate(f"{where} examples", node, ex)
                if "example" in node and ("type" in node or
                                          "properties" in node):
                    self.validate(f"{where} example", node, node["example"])
            for k, v in node.items():
                if k in ("example", "examples", "enum", "const", "default"):
                    continue
                self.schemas(f"{where}/{k}", v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                self.schemas(f"{where}[{i}]", v)

    def run(self):
        for path, item in (self.doc.get("paths") or {}).items():
            item = self.resolve(item)
            shared = item.get("parameters", [])
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                where = f"{method.upper()} {path}"
                for i, p in enumerate(shared + op.get("parameters", [])):
                    self.holder(f"{where} parameter {i}", p)
                body = self.resolve(op.get("requestBody") or {})
                for mt, m in (body.get("content") or {}).items():
                    n = self.holder(f"{where} request {mt}", m)
                    if n == 0 and "json" in mt:
                        self.failures.append(
                            f"{where} request {mt}: no example")
                for code, r in (op.get("responses") or {}).items():
                    r = self.resolve(r)
                    for h, hv in (r.get("headers") or {}).items():
                        self.holder(f"{where} {code} header {h}", hv)
                    for mt, m in (r.get("content") or {}).items():
                        self.holder(f"{where} {code} {mt}", m)
        comps = self.doc.get("components") or {}
        for kind in ("parameters", "headers"):
            for name, p in (comps.get(kind) or {}).items():
                self.holder(f"components/{kind}/{name}", p)
        for kind in ("requestBodies", "responses"):
            for name, r in (comps.get(kind) or {}).items():
                for mt, m in (self.resolve(r).get("content") or {}).items():
                    self.holder(f"components/{kind}/{name} {mt}", m)
        for name, s in (comps.get("schemas") or {}).items():
            self.schemas(f"components/schemas/{name}", s)


def main(argv):
    if len(argv) != 2:
        print("usage: openapi_examples.py OPENAPI.yaml", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not str(doc.get("openapi", "")).startswith("3.1"):
        print(f"{argv[1]}: not OpenAPI 3.1", file=sys.stderr)
        return 1
    c = Checker(doc)
    try:
        c.run()
    except jsonschema.RefResolutionError as e:
        c.failures.append(f"unresolved reference: {e}")
    for f in c.failures:
        print(f"{argv[1]}: {f}", file=sys.stderr)
    if c.checked == 0:
        print(f"{argv[1]}: no example found", file=sys.stderr)
        return 1
    print(f"{argv[1]}: {c.checked} examples checked, "
          f"{len(c.failures)} failures")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
