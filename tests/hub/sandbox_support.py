"""Support for the sandbox tests and bench/spawn.py.

* ``make_lake_and_datasets(root)``: a small lake of real DICOM files and two
  datasets A and B, laid out as docs/CONTRACTS.md §2 says (absolute symlinks to
  ``/mnt/datalake/...``, ``manifest.json``), with the lake's permissions and
  ACLs written by ``dataset_service.acl`` exactly as the dataset service does:
  lake folders above the studies traverse-only (0711), study folders 0750 with
  ``group:<dataset gid>:r-x``.
* ``StandInDatasetService``: a real HTTP server speaking the §3 sessions API
  (usable datasets, open/close session) over a fixed grant table. It stands in
  for the dataset service's sessions API so that the sandbox tests exercise
  the hub ↔ service contract without a whole governance set-up; it records
  every opened and closed session and every refusal the workspace gateway reports.
* ``kernel_exec(...)``: run code in a workspace kernel through the notebook
  server's REST + websocket API (behind the real proxy).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dataset_service import acl

GID_A, GID_B = 71001, 71002
LAKE_MOUNT = "/mnt/datalake"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_dicom(path: Path, patient: str, study_uid: str, series_uid: str, n: int) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientID = patient
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Modality = "CT"
    ds.InstanceNumber = n
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


@dataclass
class LakeLayout:
    lake: Path
    datasets: Path
    studies: dict[str, list[str]]  # dataset id -> study ids
    gids: dict[str, int]

    def dataset_file(self, ds: str) -> str:
        """A file of ``ds`` as a workspace sees it through the dataset's symlink."""
        study = self.studies[ds][0]
        return f"/mnt/datasets/{ds}/{study}/series-1/1.dcm"

    def lake_file(self, ds: str) -> str:
        study = self.studies[ds][0]
        return f"{LAKE_MOUNT}/{study}/series-1/1.dcm"


def make_lake_and_datasets(root: Path) -> LakeLayout:
    root = Path(root)
    os.chmod(root, 0o755)
    lake, datasets = root / "lake", root / "datasets"
    studies = {"ds-a": ["subj-001/study-1"], "ds-b": ["subj-002/study-1"]}
    gids = {"ds-a": GID_A, "ds-b": GID_B}
    for ds, sts in studies.items():
        for st in sts:
            subj = st.split("/")[0]
            study_uid = generate_uid()
            for n in (1, 2):
                write_dicom(lake / st / "series-1" / f"{n}.dcm", subj, study_uid, generate_uid(), n)
            (lake / subj / "eform.json").write_text(json.dumps({"subject": subj, "cancer_type": "lung"}))
    # permissions as the dataset service sets them
    for dirpath, dirnames, filenames in os.walk(lake):
        os.chmod(dirpath, 0o711)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o640 if f.endswith(".dcm") else 0o600)
    for ds, sts in studies.items():
        for st in sts:
            study_dir = lake / st
            for dirpath, dirnames, filenames in os.walk(study_dir):
                os.chmod(dirpath, 0o750)
            acl.grant_tree(str(study_dir), gids[ds])
        dsdir = datasets / ds
        dsdir.mkdir(parents=True)
        for st in sts:
            (dsdir / st).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f"{LAKE_MOUNT}/{st}", dsdir / st)
        (dsdir / "manifest.json").write_text(json.dumps({"format": "insitu-manifest/1", "dataset_id": ds,
                                                          "lake_mount_path": LAKE_MOUNT, "studies": sts}))
        for dirpath, dirnames, filenames in os.walk(dsdir):
            os.chmod(dirpath, 0o555)
            for f in filenames:
                if not os.path.islink(os.path.join(dirpath, f)):
                    os.chmod(os.path.join(dirpath, f), 0o444)
    os.chmod(datasets, 0o755)
    return LakeLayout(lake, datasets, studies, gids)


# --------------------------------------------------------------------------
# stand-in for the dataset service's sessions API (docs/CONTRACTS.md §3)
# --------------------------------------------------------------------------


@dataclass
class StandInDatasetService:
    layout: LakeLayout
    grants: dict[tuple[str, str], list[str]]  # (user, project) -> dataset ids
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = field(default_factory=free_port)
    sessions: dict[str, dict] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    refusals: list[dict] = field(default_factory=list)  # POST /api/sessions/{id}/refusals (the gateway)
    fail_open: bool = False  # answer 503 to POST /api/sessions
    down: bool = False  # answer 503 to every request (a service that is down)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self):
        from fastapi import FastAPI, Header, HTTPException
        from fastapi.responses import Response

        app = FastAPI()

        def auth(authorization: str | None) -> None:
            if self.down:
                raise HTTPException(503, "down")
            if authorization != f"token {self.token}":
                raise HTTPException(401, "bad token")

        @app.get("/api/users/{name}/usable-datasets")
        def usable(name: str, authorization: str | None = Header(None)):
            auth(authorization)
            rows = []
            for (user, project), ids in self.grants.items():
                if user == name:
                    rows += [{"dataset_id": d, "name": d.upper(), "version": "1", "project": project,
                              "gid": self.layout.gids[d], "manifest_root": "00" * 32, "expires_at": None} for d in ids]
            return rows

        @app.post("/api/sessions", status_code=201)
        def open_session(body: dict, authorization: str | None = Header(None)):
            auth(authorization)
            if self.fail_open:
                raise HTTPException(503, "tracer unavailable")
            user, project, ids = body.get("user"), body.get("project"), body.get("dataset_ids") or []
            granted = self.grants.get((user, project), [])
            refused = [{"dataset_id": d, "reason": "no grant in force"} for d in ids if d not in granted]
            if refused:
                raise HTTPException(403, {"reason": "not covered", "refused": refused})
            sid = uuid.uuid4().hex
            s = {"session_id": sid, "user": user, "project": project, "lake_dir": str(self.layout.lake),
                 "lake_mount_path": LAKE_MOUNT,
                 "datasets": [{"dataset_id": d, "gid": self.layout.gids[d], "path": str(self.layout.datasets / d),
                               "manifest_root": "00" * 32, "grant_id": f"{project}-{d}", "name": d.upper(),
                               "version": "1", "expires_at": None} for d in ids]}
            self.sessions[sid] = {**s, "open": True}
            return s

        @app.get("/api/sessions/uncovered")
        def uncovered(authorization: str | None = Header(None)):
            auth(authorization)
            out = []
            for sid, sess in self.sessions.items():
                gone = [d["dataset_id"] for d in sess["datasets"]
                        if sess["open"] and d["dataset_id"] not in self.grants.get((sess["user"], sess["project"]), [])]
                if gone:
                    out.append({"session_id": sid, "user": sess["user"], "project": sess["project"],
                                "dataset_ids": [d["dataset_id"] for d in sess["datasets"]],
                                "reason": "; ".join(f"{d.upper()} v1 ({d}): grant revoked" for d in gone), "end_reason": "revoked"})
            return out

        @app.delete("/api/sessions/{sid}")
        def close_session(sid: str, authorization: str | None = Header(None)):
            auth(authorization)
            if sid not in self.sessions:
                raise HTTPException(404, "no such session")
            self.sessions[sid]["open"] = False
            self.closed.append(sid)
            return Response(status_code=204)

        @app.post("/api/sessions/{sid}/refusals", status_code=201)
        def refusal(sid: str, body: dict, authorization: str | None = Header(None)):
            auth(authorization)
            if sid not in self.sessions:
                raise HTTPException(404, "no such session")
            self.refusals.append({"session_id": sid, **body})
            return {"traced": True}

        @app.get("/api/sessions/{sid}")
        def get_session(sid: str, authorization: str | None = Header(None)):
            auth(authorization)
            if sid not in self.sessions:
                raise HTTPException(404, "no such session")
            return self.sessions[sid]

        return app

    def start(self) -> "StandInDatasetService":
        import uvicorn

        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("stand-in dataset service did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def open_sessions(self) -> list[str]:
        return [sid for sid, s in self.sessions.items() if s["open"]]


# --------------------------------------------------------------------------
# running code in a workspace kernel
# --------------------------------------------------------------------------


def kernel_exec(server_url: str, token: str, code: str, timeout: float = 60) -> str:
    """Start a kernel on the notebook server at ``server_url`` (``.../user/NAME/``),
    run ``code``, return its stdout (stderr and errors appended)."""
    import asyncio

    import httpx
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    h = {"Authorization": f"token {token}"}
    r = httpx.post(server_url + "api/kernels", headers=h, json={"name": "python3"}, timeout=30)
    r.raise_for_status()
    kid = r.json()["id"]

    async def run() -> str:
        ws_url = server_url.replace("http://", "ws://") + f"api/kernels/{kid}/channels"
        conn = await websocket_connect(HTTPRequest(ws_url, headers=h, connect_timeout=30, request_timeout=30))
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(conn.read_message(), timeout=max(1, deadline - time.monotonic()))
            if raw is None:
                break
            m = json.loads(raw)
            if m.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            t = m["msg_type"]
            if t == "stream":
                out.append(m["content"]["text"])
            elif t == "error":
                out.append("ERROR: " + m["content"]["ename"] + ": " + m["content"]["evalue"])
            elif t == "status" and m["content"]["execution_state"] == "idle":
                break
        conn.close()
        return "".join(out)

    try:
        return asyncio.run(run())
    finally:
        httpx.delete(server_url + f"api/kernels/{kid}", headers=h, timeout=30)
