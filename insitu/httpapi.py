"""HTTP conventions shared by the platform's FastAPI services (dataset service, tracer).

One place for what every API answers the same way:

- ``UtcDateTime``: response date-times always carry their UTC offset;
- bounded integer types for ids and paging (``RowId``, ``Offset``, ``limit_query``): at most
  ``2**53 - 1``, the largest integer a JSON number carries exactly (RFC 8259 section 6; a bound of
  ``2**63 - 1`` reads back as the double 2**63 and lets 2**63 + 191 through schema-driven clients),
  and well inside the 64-bit columns of SQLite and PostgreSQL: anything above is a 422 that never
  reaches the database;
- ``unprocessable``: a hand-written 422 in FastAPI's documented shape (``{"detail": [{"loc", "msg",
  "type"}]}``), never ``{"detail": "<string>"}``;
- ``install_http_policy``: a request-body limit (413 with a reason, streamed bodies counted too), a
  500 that closes its connection (``Connection: close``), and a 405 whose ``Allow`` lists every
  method of the path.

Why the 500 closes its connection: Starlette's ``ServerErrorMiddleware`` sends the 500 and re-raises;
uvicorn then logs the traceback and closes the socket. configurable-http-proxy keeps upstream sockets
alive (a Node ``http.Agent`` with ``keepAlive``): it had already put the socket back in its pool and
sent the next caller's request down it, which then failed (ECONNRESET) and was answered with the
hub's 503 page. With ``Connection: close`` on the 500 itself, uvicorn ends the connection cleanly and
the proxy never reuses it.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated, Any, Iterable

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, Field
from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("insitu.http")

MAX_ID = 2**53 - 1  # exact in every JSON parser; see the module docstring

RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2^53-1)")]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID, description="a row id (1 to 2^53-1)")]  # in request bodies
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="items to skip (0 to 2^53-1)")]


def _utc(v: dt.datetime) -> dt.datetime:
    return v.replace(tzinfo=dt.timezone.utc) if v.tzinfo is None else v.astimezone(dt.timezone.utc)


# a date-time always answered with its offset: the databases store UTC, SQLite without a zone
UtcDateTime = Annotated[dt.datetime, AfterValidator(_utc)]


def limit_query(default: int, maximum: int):
    """``limit`` of a paged listing: 1 to ``maximum`` (declared in the spec, enforced by validation)."""
    return Annotated[int, Query(ge=1, le=maximum, description=f"page size (1 to {maximum})")]


def error_item(msg: str, loc: Iterable[str | int] = ("body",), type_: str = "value_error",
               input: Any = None) -> dict:
    return {"type": type_, "loc": list(loc), "msg": msg, "input": input}


def unprocessable(msg: str, loc: Iterable[str | int] = ("body",), type_: str = "value_error",
                  input: Any = None) -> HTTPException:
    """A 422 in FastAPI's validation-error shape: ``{"detail": [{"type", "loc", "msg", "input"}]}``."""
    return HTTPException(422, [error_item(msg, loc, type_, input)])


# --- request bodies ------------------------------------------------------------
class BodyLimit:
    """Pure ASGI middleware: bodies above ``max_bytes`` answer 413 with a reason.

    Nothing above ``max_bytes`` is ever held in memory. A declared ``Content-Length`` above the
    limit is refused before anything is kept; a streamed (chunked) body is counted as it arrives and
    refused once it passes the limit. Before answering, the rest of the body is read and dropped
    (up to ``drain_bytes``): a server that closes a socket with unread input makes the kernel reset
    the connection, and the proxy in front (configurable-http-proxy) then loses the 413 and answers
    its own 503. Beyond ``drain_bytes`` the connection is closed after the answer.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int = 64 * 1024 * 1024):
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes

    def _reason(self) -> str:
        return f"request body too large: at most {self.max_bytes} bytes"

    async def _drain(self, receive: Receive, seen: int, more: bool) -> None:
        while more and seen <= self.drain_bytes:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            seen += len(msg.get("body", b""))
            more = msg.get("more_body", False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    if value.isdigit():
                        await self._drain(receive, 0, True)
                    status = 413 if value.isdigit() else 400
                    reason = self._reason() if status == 413 else "malformed Content-Length"
                    resp = JSONResponse({"detail": reason}, status_code=status, headers={"Connection": "close"})
                    return await resp(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    await self._drain(receive, seen, msg.get("more_body", False))
                    raise HTTPException(413, self._reason(), headers={"Connection": "close"})
            return msg

        await self.app(scope, counted, send)


# --- errors ----------------------------------------------------------------------
async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # uvicorn logs the traceback after this answer (the exception is re-raised by Starlette)
    return JSONResponse({"detail": "internal error: the request was not completed"}, status_code=500,
                        headers={"Connection": "close"})


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method any route of ``app`` answers at ``path`` (routes of included routers too)."""
    compiled = app.state.__dict__.setdefault("_insitu_route_regexes", {})
    methods: set[str] = set()
    for ctx in iter_route_contexts(app.routes):
        route_path, route_methods = ctx.path, ctx.methods
        if not route_path or not route_methods:
            continue
        if route_path not in compiled:
            compiled[route_path] = compile_path(route_path)[0]
        if compiled[route_path].match(path):
            methods |= set(route_methods)
    return sorted(methods)


def _method_not_allowed(app: FastAPI):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        allow = allowed_methods(app, request.url.path)
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                            headers={"Allow": ", ".join(allow)})
    return handler


def install_http_policy(app: FastAPI, *, max_body: int) -> None:
    """Body limit, clean 500s and complete 405s on ``app`` (call once, in the app factory)."""
    app.add_middleware(BodyLimit, max_bytes=max_body)
    app.add_exception_handler(Exception, _internal_error)
    app.add_exception_handler(405, _method_not_allowed(app))
