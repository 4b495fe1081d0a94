"""Checks live answers against the API description the binary serves (/openapi.json, built from docs/openapi.yaml).

A small JSON Schema validator for the subset the document uses (type, enum, const, required, properties,
additionalProperties, items, oneOf, anyOf, allOf, $ref, minimum, maximum, minLength, maxLength); `format` and
descriptions are not checked. Python standard library only, like the other end-to-end tests."""

import json
import re


class SchemaError(AssertionError):
    pass


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class OpenApi:
    def __init__(self, document):
        self.doc = document

    def resolve(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise SchemaError(f"external $ref {ref}")
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def errors(self, schema, value, where="$"):
        """Every way `value` fails `schema`, as strings naming where."""
        schema = self.resolve(schema)
        if schema is True or schema == {}:
            return []
        out = []
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_TYPES[t](value) for t in types):
                return [f"{where}: {json.dumps(value)[:80]} is not {types}"]
        if "const" in schema and value != schema["const"]:
            out.append(f"{where}: {value!r} != const {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} not in {schema['enum']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                out.append(f"{where}: {value} < minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                out.append(f"{where}: {value} > maximum {schema['maximum']}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                out.append(f"{where}: longer than {schema['maxLength']}")
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    out.append(f"{where}: required member {name!r} missing")
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            for name, member in value.items():
                if name in props:
                    out += self.errors(props[name], member, f"{where}.{name}")
                elif extra is False:
                    out.append(f"{where}: member {name!r} is not in the schema")
                elif isinstance(extra, dict):
                    out += self.errors(extra, member, f"{where}.{name}")
        if isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                out += self.errors(schema["items"], item, f"{where}[{i}]")
        for sub in schema.get("allOf", []):
            out += self.errors(sub, value, where)
        if "anyOf" in schema and not any(not self.errors(s, value, where) for s in schema["anyOf"]):
            out.append(f"{where}: matches none of anyOf")
        if "oneOf" in schema:
            matching = sum(1 for s in schema["oneOf"] if not self.errors(s, value, where))
            if matching != 1:
                out.append(f"{where}: matches {matching} of oneOf, not exactly one")
        return out

    def operation(self, method, path):
        """The path template and operation an actual request path matches."""
        for template, item in self.doc.get("paths", {}).items():
            pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path) and method.lower() in item:
                return template, item[method.lower()]
        raise SchemaError(f"{method} {path}: no operation in the document")

    def check(self, method, path, response):
        """Asserts that `response` (an atrium_e2e.Response) is one the document describes for the request."""
        path = path.split("?", 1)[0]
        template, op = self.operation(method, path)
        responses = op.get("responses", {})
        spec = responses.get(str(response.status)) or responses.get(f"{str(response.status)[0]}XX") or \
            responses.get("default")
        # Conditional requests apply to every operation (the document's problem table and ETag header say so):
        # 304 to a GET, without a body; 412 to a change, as a problem.
        if spec is None and response.status == 304 and method == "GET":
            if response.body:
                raise SchemaError(f"{method} {template}: 304 with a body")
            return
        if spec is None and response.status == 412 and method != "GET":
            spec = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
        if spec is None:
            raise SchemaError(f"{method} {template}: status {response.status} is not documented")
        spec = self.resolve(spec)
        content = spec.get("content")
        if not content:
            if response.body:
                raise SchemaError(f"{method} {template} {response.status}: a body where none is documented")
            return
        media = (response.header("Content-Type") or "").split(";")[0].strip()
        if media not in content:
            raise SchemaError(f"{method} {template} {response.status}: {media} not in {list(content)}")
        schema = content[media].get("schema")
        if schema is None or not media.endswith("json"):
            return
        errors = self.errors(schema, response.json())
        if errors:
            raise SchemaError(f"{method} {template} {response.status}: " + "; ".join(errors[:5]))
