"""API documentation of the platform's services: the OpenAPI spec says what the code enforces, and
the docs page is served from local assets.

``install_api_docs(app, prefix=...)`` (after ``install_hub_auth``: the login cookie's name is read from it)

- ``{prefix}/openapi.json``: FastAPI's spec, completed from the routes themselves:
  - security schemes (``hubToken``: ``Authorization: token <hub API token>``; ``hubCookie``: the
    service's login cookie), declared on every operation that resolves the caller, and an empty
    ``security`` on the public ones;
  - the error answers each operation can give, with one error schema: 401/403/503 where the caller
    is resolved (no or unknown token, a role or scope missing, the hub unreachable), 404 where the
    path names something, 409 and 503 (a trace not accepted) on writes, 413 where a body is read,
    422 everywhere a parameter or body is validated. Answers a route declares itself are kept.
- ``{prefix}/docs``: Swagger UI from ``swagger-ui-dist`` (npm, ``package.json``) under
  ``{prefix}/docs/assets/`` — no CDN, no validator badge, nothing fetched from outside. The folder
  is ``INSITU_SWAGGER_UI_DIR`` or ``node_modules/swagger-ui-dist``; without it the page answers 503
  with the reason.

Both are public: the spec describes only the shape of the API (no data, no user), every operation
still checks its caller, and clients and auditors build their tools from it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles

REPO = Path(__file__).resolve().parents[1]
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "description": "the reason: a sentence, a list of validation errors "
                           "(``{loc, msg, type}``) or an object with a reason and details",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}, {"type": "object"}],
        }
    },
}
REASONS = {
    "400": "A body that cannot be read as JSON, or names something that cannot be used (the reason says what)",
    "401": "No token, or a token the hub does not recognise",
    "403": "The caller may not do this (role, scope, service or ownership)",
    "404": "Nothing of that id (or not visible to the caller)",
    "409": "Conflicts with the current state (the reason says which)",
    "413": "Request body too large",
    "422": "Validation error",
    "503": "A platform dependency (the hub, the tracer) did not answer; nothing changed",
}
WRITES = {"post", "put", "patch", "delete"}


def swagger_ui_dir() -> Path:
    return Path(os.environ.get("INSITU_SWAGGER_UI_DIR") or REPO / "node_modules" / "swagger-ui-dist")


def _resolves_caller(route: APIRoute, names: set[str]) -> bool:
    todo = [route.dependant] if getattr(route, "dependant", None) else []
    while todo:
        d = todo.pop()
        if getattr(d.call, "__name__", "") in names:
            return True
        todo.extend(d.dependencies)
    return False


def _error(code: str) -> dict:
    return {"description": REASONS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _tighten_keys(node: Any) -> None:
    """Pydantic writes ``dict[Annotated[str, pattern], V]`` as ``patternProperties``, which lets any
    other key through in JSON Schema; the code refuses those keys, so the spec says so too."""
    if isinstance(node, dict):
        pats = node.get("patternProperties")
        if isinstance(pats, dict) and len(pats) == 1 and "additionalProperties" not in node:
            node.setdefault("propertyNames", {})["pattern"] = next(iter(pats))
            node["additionalProperties"] = False
        for v in node.values():
            _tighten_keys(v)
    elif isinstance(node, list):
        for v in node:
            _tighten_keys(v)


def complete_spec(schema: dict, routes: list, *, cookie_name: str | None,
                  caller_deps: set[str]) -> dict:
    comps = schema.setdefault("components", {})
    comps.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    _tighten_keys(comps["schemas"])
    schemes = {"hubToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                            "description": "`token <JupyterHub API token>` (a user's or a platform service's)"}}
    if cookie_name:
        schemes["hubCookie"] = {"type": "apiKey", "in": "cookie", "name": cookie_name,
                                "description": "set by the service's hub OAuth login (browsers)"}
    comps["securitySchemes"] = schemes
    paths = schema.get("paths", {})
    for ctx in routes:
        route = ctx.original_route
        if not isinstance(route, APIRoute) or not ctx.include_in_schema or not ctx.path_format:
            continue
        ops = paths.get(ctx.path_format, {})
        secured = _resolves_caller(route, caller_deps)
        for method in ctx.methods or ():
            op = ops.get(method.lower())
            if op is None:
                continue
            op["security"] = [{name: []} for name in schemes] if secured else []
            codes = ["422"]
            if secured:
                codes += ["401", "403", "503"]
            has_body = "requestBody" in op
            if "{" in ctx.path_format or has_body:  # a path or a body naming something that is not there
                codes.append("404")
            if has_body:  # a body that is not JSON at all (FastAPI: "There was an error parsing the body")
                codes.append("400")
            if method.lower() in WRITES:
                codes += ["409", "413", "503"]
            responses = op.setdefault("responses", {})
            for code in codes:
                if code not in responses:
                    responses[code] = _error(code)
                elif code != "422":
                    responses[code].setdefault("content", _error(code)["content"])
    return schema


def install_api_docs(app: FastAPI, *, prefix: str, caller_deps: tuple[str, ...] = ("current_identity",),
                     extra_schemas: dict[str, Any] | None = None) -> None:
    """Spec completion and the local Swagger UI page (create the app with ``docs_url=None``)."""
    prefix = prefix.rstrip("/")
    base: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        routes = list(iter_route_contexts(app.routes))
        auth = getattr(app.state, "hub_auth", None)
        cookie = getattr(getattr(auth, "config", None), "cookie_name", None)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(extra_schemas or {})
        app.openapi_schema = complete_spec(schema, routes, cookie_name=cookie, caller_deps=set(caller_deps))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    assets = swagger_ui_dir()

    @app.get(f"{prefix}/docs", include_in_schema=False)
    def docs_page():
        if not all((assets / a).is_file() for a in ASSETS):
            return JSONResponse({"detail": f"the API docs assets are not installed ({assets}): run the set-up"},
                                status_code=503)
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or f"{prefix}/openapi.json", title=f"{app.title} — API",
            swagger_js_url=f"{prefix}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{prefix}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{prefix}/docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None, "tryItOutEnabled": False},
        )
        return HTMLResponse(page.body, headers={"Cache-Control": "no-store"})

    if assets.is_dir():
        app.mount(f"{prefix}/docs/assets", StaticFiles(directory=assets), name="api-docs-assets")
