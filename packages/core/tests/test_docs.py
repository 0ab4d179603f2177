"""`/docs`: Swagger UI on the app's own document, from files the app serves itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from starling_testkit.browser import rendered_dom


class _References(HTMLParser):
    """Every URL a page loads or links to: src and href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def references(page: str) -> list[str]:
    parser = _References()
    parser.feed(page)
    return parser.urls


async def test_the_docs_page_loads_only_files_the_app_serves_itself(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = references(response.text)
    assert {"docs/assets/swagger-ui.css", "docs/assets/swagger-ui-bundle.js", "docs/start.js"} <= set(urls)
    for url in urls:
        # relative: on this origin, under whatever path prefix a proxy serves the app
        assert not urlsplit(url).scheme, url
        assert not url.startswith("/"), url
        asset = await client.get(urljoin("/docs", url))
        assert asset.status_code == 200, url


async def test_the_docs_script_reads_the_apps_own_document_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    script = (await client.get("/docs/start.js")).text

    assert 'url: "openapi.json"' in script
    assert "validatorUrl: null" in script  # Swagger UI would send the document to an online validator
    assert not re.search(r"https?://", script)


async def test_the_docs_page_may_load_and_fetch_from_its_own_origin_only(client: httpx.AsyncClient) -> None:
    policy = (await client.get("/docs")).headers["content-security-policy"]

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for directive in ("script-src", "connect-src"):
        assert directives[directive] == "'self'"


async def test_the_docs_are_not_operations_of_the_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert not [path for path in paths if path.startswith("/docs")]


async def test_chromium_renders_every_operation_of_the_document_offline(live_server: str) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        document = (await client.get("/openapi.json")).json()

    # Chromium resolves no host but loopback: the page, its scripts and the document all come from here.
    dom = await rendered_dom(f"{live_server}/docs")

    operations = {
        (method.upper(), path, entry["operationId"])
        for path, item in document["paths"].items()
        for method, entry in item.items()
    }
    assert operations
    # Swagger UI draws each operation as a block with the method, the path and the operation's id.
    blocks = set(re.findall(r'id="operations-[^"]*?-([^"-]+)"', dom))
    shown_paths = set(re.findall(r'data-path="([^"]+)"', dom))
    shown_methods = set(re.findall(r'class="opblock-summary-method">([A-Z]+)<', dom))
    assert {operation_id for _, _, operation_id in operations} <= blocks
    assert {path for _, path, _ in operations} <= shown_paths
    assert {method for method, _, _ in operations} <= shown_methods
