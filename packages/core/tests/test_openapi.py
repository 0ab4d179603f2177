"""`/openapi.json` describes every route from the models the route really uses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.routing import Route

from starling_core.openapi import build_openapi
from starling_core.operations import operation, route


async def test_served_document_lists_429_where_the_app_limits_rates(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    # create_app limits /api/ by default, and the served document says so for each operation there
    assert "429" in paths["/api/items"]["post"]["responses"]
    assert "429" in paths["/api/items/{item_id}"]["get"]["responses"]


async def test_openapi_document_describes_operations(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"

    create = document["paths"]["/api/items"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemIn"
    }
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemOut"
    }
    assert {"409", "422", "413"} <= set(create["responses"])

    listing = document["paths"]["/api/items"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"prefix", "limit"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"

    count = document["paths"]["/api/items/count"]["get"]
    assert count["security"] == [{"bearer": ["items:admin"]}]
    assert {"401", "403"} <= set(count["responses"])

    item = document["paths"]["/api/items/{item_id}"]["get"]
    assert item["parameters"][0] == {
        "name": "item_id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }

    schemas = document["components"]["schemas"]
    assert schemas["ItemIn"]["properties"]["name"]["minLength"] == 1
    assert "/health" not in document["paths"]


class _Red(BaseModel):
    red: int


class _Blue(BaseModel):
    blue: str


class _JsonIn(BaseModel):
    text: str


class _FormIn(BaseModel):
    name: str
    file: bytes = Field(json_schema_extra={"contentMediaType": "text/plain"})


@operation(response=list[_Red])
async def reds(request: Request) -> list[_Red]:
    """Reds."""
    return []


@operation(response=list[_Blue], authenticated=True)
async def blues(request: Request) -> list[_Blue]:
    """Blues."""
    return []


@operation(
    accepts={"application/json": _JsonIn, "multipart/form-data": _FormIn},
    response=_Red,
    extra_responses={202: _Blue},
    response_headers={202: {"Location": "where the upload will be"}},
)
async def upload(request: Request) -> _Red:
    """Upload."""
    return _Red(red=1)


def document() -> dict[str, Any]:
    routes = [
        route("/api/colours", GET=reds, POST=upload),
        Route("/blues/{blue_id}", blues, methods=["GET"]),
    ]
    return build_openapi(routes, title="colours", rate_limited_paths=["/api/"])


def test_two_list_responses_keep_their_own_item_schemas() -> None:
    paths = document()["paths"]
    red_list = paths["/api/colours"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    blue_list = paths["/blues/{blue_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert red_list["items"] == {"$ref": "#/components/schemas/_Red"}
    assert blue_list["items"] == {"$ref": "#/components/schemas/_Blue"}


def test_a_body_the_handler_parses_itself_is_documented_for_each_media_type() -> None:
    post = document()["paths"]["/api/colours"]["post"]
    content = post["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/_JsonIn"}
    assert content["multipart/form-data"]["schema"] == {"$ref": "#/components/schemas/_FormIn"}
    # The uploaded part's media type, where clients look for it.
    assert content["multipart/form-data"]["encoding"] == {"file": {"contentType": "text/plain"}}
    assert {"400", "413", "422"} <= set(post["responses"])


def test_other_success_answers_are_documented_with_their_schema() -> None:
    responses = document()["paths"]["/api/colours"]["post"]["responses"]
    assert responses["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/_Blue"}
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/_Red"}


def test_headers_of_a_success_answer_are_documented_on_it() -> None:
    responses = document()["paths"]["/api/colours"]["post"]["responses"]
    assert responses["202"]["headers"] == {
        "Location": {"description": "where the upload will be", "schema": {"type": "string"}}
    }
    assert "headers" not in responses["200"]


def test_rate_limited_operations_document_429_and_others_do_not() -> None:
    paths = document()["paths"]
    assert "429" in paths["/api/colours"]["get"]["responses"]
    assert "429" in paths["/api/colours"]["post"]["responses"]
    assert "429" not in paths["/blues/{blue_id}"]["get"]["responses"]


def test_one_route_for_a_path_documents_each_method_as_its_own_operation() -> None:
    item = document()["paths"]["/api/colours"]
    assert set(item) == {"get", "post"}
    assert item["get"]["operationId"] == "reds_get"
    assert item["post"]["operationId"] == "upload_post"


def test_path_parameters_say_what_the_route_matches_and_may_answer_422() -> None:
    get = document()["paths"]["/blues/{blue_id}"]["get"]
    assert get["parameters"] == [
        {
            "name": "blue_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[^/]+$"},
        }
    ]
    assert "422" in get["responses"]


def test_an_operation_takes_a_parsed_body_or_a_documented_one_not_both() -> None:
    with pytest.raises(TypeError, match="not both"):
        operation(body=_JsonIn, accepts={"application/json": _JsonIn})


def test_an_operation_for_any_valid_token_declares_bearer_security_and_401_only() -> None:
    get = document()["paths"]["/blues/{blue_id}"]["get"]
    assert get["security"] == [{"bearer": []}]
    assert "401" in get["responses"]
    assert "403" not in get["responses"]
