"""The route a request went to, named by its template (`/items/{item_id}`): what logs and metrics show.

Never the raw path: that holds ids without bound (one metric series each) and, in its query string,
whatever a client put there, tokens included.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

# No template starts without a slash, so this never names a real route.
UNMATCHED = "<unmatched>"


def route_template(scope: Scope) -> str:
    """The template of the route that `scope` matched, or `UNMATCHED` (a 404)."""
    route = scope.get("route")
    # Starlette's router records the route it chose; a Mount's inner router records the inner route,
    # whose path lacks the Mount's, and app_root_path is set only under a Mount.
    if route is not None and not isinstance(route, Mount) and "app_root_path" not in scope:
        return str(getattr(route, "path", UNMATCHED))
    # Refused before routing (413, 429), or under a Mount: match again, from the app's own routes and
    # its own root path (a Mount moved the scope's root_path to its prefix).
    top = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    return _match(getattr(scope.get("app"), "routes", ()), top) or UNMATCHED


def _match(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = _match(route.routes, {**scope, **child}) if route.routes else None
            template = route.path + (inner or "/{path}")
        else:
            template = str(getattr(route, "path", ""))
        if match is Match.FULL:
            return template
        partial = partial or template  # a 405: the path is right, the method is not
    return partial
