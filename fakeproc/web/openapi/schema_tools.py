"""Building blocks of the OpenAPI 3.0.3 document: small schema shapes, and pydantic's JSON
Schema (2020-12) turned into what OpenAPI 3.0 takes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
TEXT: Schema = {"type": "string", "nullable": True}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}

# Only null: what a `null` option of a combination (a $ref, a oneOf) becomes in OpenAPI 3.0,
# where `nullable` takes effect only next to a `type`.
NULL_ONLY: Schema = {"type": "object", "nullable": True, "enum": [None]}

# A stored decimal as the control API writes it back (a JSON string).
DECIMAL_TEXT: Schema = {"type": "string", "pattern": r"^[0-9]+(?:\.[0-9]{1,3})?$"}


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def object_(properties: Schema, required: list[str] | None = None, **extra: Any) -> Schema:
    """An object schema; every property is required unless `required` says otherwise."""
    required = list(properties) if required is None else required
    return {"type": "object", "properties": properties, **extra} | (
        {"required": required} if required else {})


def json_(schema: Schema, description: str, challenge: str | None = None) -> Schema:
    """A JSON response; `challenge` names the scheme of its `WWW-Authenticate` header."""
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if challenge:
        response["headers"] = {"WWW-Authenticate": {"required": True, "schema": STRING,
                                                    "description": f"`{challenge} realm=...`"}}
    return response


def query_(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def model_schema(model: type[BaseModel], components: Schema) -> Schema:
    """A pydantic model's JSON Schema as OpenAPI 3.0 wants it; nested `$defs` join components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update({name: oas30(sub) for name, sub in schema.pop("$defs", {}).items()})
    return oas30(schema)


def oas30(schema: Any) -> Any:
    """JSON Schema 2020-12 (pydantic) to OpenAPI 3.0: a `null` option becomes `nullable` next
    to a single typed option, else an only-null option; `const` an enum; a numeric
    `exclusiveMinimum`/`exclusiveMaximum` the boolean form."""
    if isinstance(schema, list):
        return [oas30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: ({name: oas30(sub) for name, sub in value.items()} if key == "properties"
                 else oas30(value)) for key, value in schema.items()}
    for key in ("anyOf", "oneOf"):
        if {"type": "null"} in out.get(key, []):
            rest = [option for option in out.pop(key) if option != {"type": "null"}]
            if len(rest) == 1 and "type" in rest[0] and "$ref" not in rest[0]:
                out = rest[0] | out
                out["nullable"] = True
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
            else:  # `nullable` beside a $ref or a oneOf would be ignored
                out[key] = [*rest, NULL_ONLY]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if type(out.get(exclusive)) in (int, float):
            out[bound], out[exclusive] = out[exclusive], True
    return out
