"""Build an OpenAPI 3.1 document from the routes and the pydantic models their operations declare."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from starlette.routing import BaseRoute, Mount, Route

from starling_core.operations import Operation, endpoints_of, operation_of

REF_TEMPLATE = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::([^}]+))?}")
# What each of Starlette's path convertors matches; anything else in that segment is a 404.
_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string", "pattern": "^[^/]+$"},
    "path": {"type": "string", "minLength": 1},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}

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


def build_openapi(
    routes: Sequence[BaseRoute],
    *,
    title: str,
    version: str = "1.0.0",
    rate_limited_paths: Sequence[str] = (),
) -> dict[str, Any]:
    """The document for `routes`; operations under `rate_limited_paths` also list their 429."""
    limited = tuple(prefix.rstrip("/") for prefix in rate_limited_paths)
    paths: dict[str, dict[str, Any]] = {}
    # Schemas are keyed by the type itself: names collide (`list[A]` and `list[B]` are both "list").
    schema_inputs: list[tuple[tuple[Any, JsonSchemaMode], JsonSchemaMode, TypeAdapter[Any]]] = []
    pending: list[tuple[dict[str, Any], Operation, bool]] = []

    for path, route in _walk(routes, ""):
        openapi_path = _PATH_PARAM.sub(r"{\1}", path)
        item = paths.setdefault(openapi_path, {})
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": dict(_CONVERTER_SCHEMAS.get(converter or "str", _CONVERTER_SCHEMAS["str"])),
            }
            for name, converter in _PATH_PARAM.findall(path)
        ]
        rate_limited = any(path == prefix or path.startswith(prefix + "/") for prefix in limited)
        for method, endpoint in sorted(endpoints_of(route).items()):
            if method == "HEAD":
                continue
            spec = operation_of(endpoint)
            name = getattr(endpoint, "__name__", route.name) if endpoint is not route.endpoint else route.name
            entry: dict[str, Any] = {
                "operationId": f"{name}_{method.lower()}",
                "parameters": list(parameters),
            }
            if spec is None:
                entry["summary"] = name
                entry["responses"] = {"200": {"description": "OK"}}
            else:
                pending.append((entry, spec, rate_limited))
                models = [spec.body, spec.query, *spec.accepts.values()]
                for model in models:
                    if model is not None:
                        schema_inputs.append(((model, "validation"), "validation", TypeAdapter(model)))
                for response in (spec.response, *spec.extra_responses.values()):
                    if response is not None:
                        key: tuple[Any, JsonSchemaMode] = (response, "serialization")
                        schema_inputs.append((key, "serialization", TypeAdapter(response)))
            item[method.lower()] = entry

    refs, definitions = TypeAdapter.json_schemas(schema_inputs, ref_template=REF_TEMPLATE)
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, **definitions.get("$defs", {})}

    for entry, spec, rate_limited in pending:
        _fill(entry, spec, refs, components, rate_limited=rate_limited)

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
    refs: dict[tuple[tuple[Any, JsonSchemaMode], JsonSchemaMode], Any],
    components: dict[str, Any],
    *,
    rate_limited: bool,
) -> None:
    entry["summary"] = spec.summary
    if spec.tags:
        entry["tags"] = list(spec.tags)
    if spec.authenticated:
        entry["security"] = [{"bearer": list(spec.scopes)}]
    if spec.query is not None:
        query_schema = _resolve(refs[((spec.query, "validation"), "validation")], components)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            entry["parameters"].append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    content: dict[str, Any] = {}
    if spec.body is not None:
        content["application/json"] = {"schema": refs[((spec.body, "validation"), "validation")]}
    for media_type, model in spec.accepts.items():
        content[media_type] = _media_type(media_type, refs[((model, "validation"), "validation")], components)
    if content:
        entry["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, response in {spec.status_code: spec.response, **spec.extra_responses}.items():
        if response is None:
            responses[str(status)] = {"description": "No content"}
        else:
            schema = refs[((response, "serialization"), "serialization")]
            responses[str(status)] = {
                "description": "Success",
                "content": {"application/json": {"schema": schema}},
            }
        if headers := spec.response_headers.get(status):
            responses[str(status)]["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
            }
    statuses = set(spec.errors)
    # A path parameter holding what no database can look up (a NUL) is refused with 422 too.
    if content or spec.query is not None or entry["parameters"]:
        statuses.add(422)
    if content:
        # Malformed (400) and oversized (413) bodies are refused before validation.
        statuses.update({400, 413})
    if spec.authenticated:
        statuses.add(401)
    if spec.scopes:
        statuses.add(403)
    if rate_limited:
        statuses.add(429)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="Error")}}},
        }
    entry["responses"] = responses


def _media_type(media_type: str, schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    described: dict[str, Any] = {"schema": schema}
    if media_type == "multipart/form-data":
        # A part's own media type (an uploaded text file) goes in `encoding`, where clients look for it.
        properties = _resolve(schema, components).get("properties", {})
        encoding = {
            name: {"contentType": prop["contentMediaType"]}
            for name, prop in properties.items()
            if isinstance(prop, dict) and "contentMediaType" in prop
        }
        if encoding:
            described["encoding"] = encoding
    return described


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        resolved: dict[str, Any] = components[ref.rsplit("/", 1)[-1]]
        return resolved
    return schema


def _walk(routes: Sequence[BaseRoute], prefix: str) -> list[tuple[str, Route]]:
    found: list[tuple[str, Route]] = []
    for route in routes:
        if isinstance(route, Route) and route.include_in_schema:
            found.append((prefix + route.path, route))
        elif isinstance(route, Mount) and route.routes:
            found.extend(_walk(list(route.routes), prefix + route.path))
    return found
