"""Wiring of the export airlock: the one :class:`Airlock` of an app, built when the app is assembled
(``dataset_service.app.create_app``), and the answers shared by the REST API and the pages."""
from __future__ import annotations

import base64
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response

from insitu.httpapi import unprocessable
from insitu.identity import Identity
from insitu.trace_client import TraceFailed, Tracing

from .findings import thumbnail_png
from .service import Airlock, AirlockError
from .settings import AirlockSettings
from .store import FrozenStore


def build_airlock(settings, ast: AirlockSettings) -> Airlock:
    """The airlock of a dataset service with ``settings`` (pure: creates nothing on disk)."""
    return Airlock(ast, FrozenStore(ast.store_dir),
                   Tracing(settings.tracer_url, settings.tracer_token, settings.pseudonym_key))


def airlock_settings(request: Request) -> AirlockSettings:
    return request.app.state.airlock_settings


def get_airlock(request: Request) -> Airlock:
    return request.app.state.airlock


AirlockDep = Annotated[Airlock, Depends(get_airlock)]


def http_error(e: Exception) -> HTTPException:
    if isinstance(e, AirlockError):
        if e.status == 422 and isinstance(e.reason, str):
            return unprocessable(e.reason)
        return HTTPException(e.status, e.reason)
    if isinstance(e, TraceFailed):
        return HTTPException(503, str(e))
    raise e


def download_response(airlock: Airlock, db, request_id: str, file_id: int, who: Identity) -> FileResponse:
    try:
        with db.session() as s:
            f, path = airlock.open_for_download(s, request_id, file_id, who)
            name, digest = f.name, f.sha256
    except (AirlockError, TraceFailed) as e:
        raise http_error(e)
    b64 = base64.b64encode(bytes.fromhex(digest)).decode()
    return FileResponse(
        path, media_type="application/octet-stream", filename=name.rsplit("/", 1)[-1],
        headers={"X-Content-SHA256": digest, "Repr-Digest": f"sha-256=:{b64}:", "Cache-Control": "no-store"},
    )


def preview_response(airlock: Airlock, db, request_id: str, file_id: int, who: Identity) -> Response:
    try:
        with db.session() as s:
            f, path = airlock.preview_path(s, request_id, file_id, who)
            kind = f.kind
    except AirlockError as e:
        raise http_error(e)
    try:
        if kind == "array":  # the middle slice, scaled and downscaled (airlock/previews.py)
            from .previews import array_slice_png

            png = array_slice_png(path)
            if png is None:
                raise ValueError("no 2-D slice")
        else:
            png = thumbnail_png(path)
    except Exception:
        raise HTTPException(422, "the image cannot be previewed")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})
