"""`GET /docs`: Swagger UI on the service's own `/openapi.json`, with no file from anywhere else.

Swagger UI's files come from the installed `swagger-ui-bundle-v2` package (the files of swagger-ui-dist
on npm, the version pinned in core's dependencies) and are served from `/docs/assets/` by Starlette's
`StaticFiles`, so the page works on a machine with no network. Every URL in the page is relative: the
same page works under a proxy's path prefix. Its Content-Security-Policy lets the browser load and
fetch from this origin only, so nothing on it can call out even by accident.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

# Swagger UI sets inline styles, and draws icons from data: URIs in its stylesheet.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# Relative to /docs, `docs/...` is /docs/... and `openapi.json` is /openapi.json.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/start.js"></script>
</body>
</html>
"""

# A file rather than an inline script, so the policy can forbid inline scripts. `validatorUrl: null`:
# Swagger UI would otherwise send the document to an online validator.
START = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
});
"""


def routes(title: str) -> list[BaseRoute]:
    """`/docs`, its start script and Swagger UI's files, none of them in the OpenAPI document."""
    page = PAGE.format(title=html.escape(title))

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers={"Content-Security-Policy": POLICY})

    async def start(request: Request) -> Response:
        return Response(START, media_type="text/javascript")

    return [
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
        Route("/docs/start.js", start, methods=["GET"], include_in_schema=False),
        Mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets"),
    ]
