"""Build an OpenAPI 3.1 document from the routes and the pydantic models their operations declare."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from starlette.routing import BaseRoute, Mount, Route

from starling_core.operations import Operation, operation_of

REF_TEMPLATE = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {}},
    "required": ["detail"],
    "title": "Error",
}
_REASONS = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Missing scope",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Validation error",
    429: "Rate limit exceeded",
    503: "Service unavailable",
}


def build_openapi(routes: list[BaseRoute], *, title: str, version: str = "1.0.0") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schema_inputs: list[tuple[tuple[str, JsonSchemaMode], JsonSchemaMode, TypeAdapter[Any]]] = []
    pending: list[tuple[dict[str, Any], Operation]] = []

    for path, route in _walk(routes, ""):
        spec = operation_of(route.endpoint)
        openapi_path = _PATH_PARAM.sub(r"{\1}", path)
        item = paths.setdefault(openapi_path, {})
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            entry: dict[str, Any] = {"operationId": f"{route.name}_{method.lower()}"}
            entry["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in _PATH_PARAM.findall(path)
            ]
            if spec is None:
                entry["summary"] = route.name
                entry["responses"] = {"200": {"description": "OK"}}
            else:
                pending.append((entry, spec))
                for model in (spec.body, spec.query):
                    if model is not None:
                        schema_inputs.append(
                            ((model.__qualname__, "validation"), "validation", TypeAdapter(model))
                        )
                if spec.response is not None:
                    key: tuple[str, JsonSchemaMode] = (_type_key(spec.response), "serialization")
                    schema_inputs.append((key, "serialization", TypeAdapter(spec.response)))
            item[method.lower()] = entry

    refs, definitions = TypeAdapter.json_schemas(schema_inputs, ref_template=REF_TEMPLATE)
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, **definitions.get("$defs", {})}

    for entry, spec in pending:
        _fill(entry, spec, refs, components)

    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _fill(
    entry: dict[str, Any],
    spec: Operation,
    refs: dict[tuple[tuple[str, JsonSchemaMode], JsonSchemaMode], Any],
    components: dict[str, Any],
) -> None:
    entry["summary"] = spec.summary
    if spec.tags:
        entry["tags"] = list(spec.tags)
    if spec.scopes:
        entry["security"] = [{"bearer": list(spec.scopes)}]
    if spec.query is not None:
        query_schema = _resolve(refs[((spec.query.__qualname__, "validation"), "validation")], components)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            entry["parameters"].append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    if spec.body is not None:
        entry["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": refs[((spec.body.__qualname__, "validation"), "validation")]}
            },
        }
    responses: dict[str, Any] = {}
    if spec.response is None:
        responses[str(spec.status_code)] = {"description": "No content"}
    else:
        schema = refs[((_type_key(spec.response), "serialization"), "serialization")]
        responses[str(spec.status_code)] = {
            "description": "Success",
            "content": {"application/json": {"schema": schema}},
        }
    statuses = set(spec.errors)
    if spec.body is not None or spec.query is not None:
        statuses.add(422)
    if spec.body is not None:
        statuses.update({400, 413})
    if spec.scopes:
        statuses.update({401, 403})
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="Error")}}},
        }
    entry["responses"] = responses


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = components[ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _type_key(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)


def _walk(routes: list[BaseRoute], prefix: str) -> list[tuple[str, Route]]:
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Route) and route.include_in_schema:
            found.append((prefix + route.path, route))
        elif isinstance(route, Mount) and route.routes:
            found.extend(_walk(list(route.routes), prefix + route.path))
    return found
