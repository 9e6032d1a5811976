"""Dataset operations shared by the API and the command line.

Each operation validates first, sends its trace (``traces.record``) and only then
commits, so a refused request or an unreachable tracer changes nothing.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from . import traces
from .builder import add_event, final_path
from .db import Database
from .integrity import CheckResult, check_dataset
from .models import Dataset, DatasetState
from .settings import Settings
from .states import EDITABLE_FIELDS, EDITABLE_STATES, TRACE_ACTION, TransitionError, check_transition


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


def _get(s, dataset_id: str) -> Dataset:
    ds = s.get(Dataset, dataset_id) if isinstance(dataset_id, str) and len(dataset_id) <= 64 else None
    if ds is None:
        raise NotFound(f"no dataset {dataset_id!r}")
    return ds


def transition(settings: Settings, db: Database, dataset_id: str, target: DatasetState, actor: str,
               reason: str = "") -> Dataset:
    with db.session() as s:
        ds = _get(s, dataset_id)
        current = ds.state
        try:
            check_transition(current, target, reason)
        except TransitionError as e:
            raise Conflict(str(e)) from None
        ev = add_event(s, ds, actor, "transition", {"from": current.value, "to": target.value, "reason": reason})
        s.flush()
        details = {"from": current.value, "to": target.value}
        if reason.strip():  # the reason itself stays in the service; the trace carries its digest
            details["reason_sha256"] = hashlib.sha256(reason.strip().encode("utf-8")).hexdigest()
        traces.record(settings, TRACE_ACTION[target], actor=actor, dataset_id=ds.id, root=ds.merkle_root,
                      details=details, key=f"event-{ev.seq}")
        ds.state = target
        return ds


def update_metadata(settings: Settings, db: Database, dataset_id: str, changes: dict, actor: str) -> Dataset:
    bad = [k for k in changes if k not in EDITABLE_FIELDS]
    if bad:
        raise Conflict(f"field(s) {', '.join(bad)} cannot change: content never changes; create a new version")
    with db.session() as s:
        ds = _get(s, dataset_id)
        if ds.state not in EDITABLE_STATES:
            raise Conflict(f"a {ds.state.value} dataset cannot be edited")
        diff = {k: v for k, v in changes.items() if getattr(ds, k) != v}
        if not diff:
            return ds
        ev = add_event(s, ds, actor, "update", {"fields": sorted(diff)})
        s.flush()
        traces.record(settings, "UPDATE_DATASET", actor=actor, dataset_id=ds.id, root=ds.merkle_root,
                      details={"fields": ",".join(sorted(diff))}, key=f"event-{ev.seq}")
        for k, v in diff.items():
            setattr(ds, k, v)
        return ds


def check(settings: Settings, db: Database, dataset_id: str) -> CheckResult:
    with db.session() as s:
        ds = _get(s, dataset_id)
        if ds.state in (DatasetState.building, DatasetState.failed):
            raise Conflict(f"dataset {dataset_id} is {ds.state.value}: nothing to check")
        root = ds.merkle_root
    return check_dataset(final_path(settings, dataset_id), Path(settings.lake_dir), settings.lake_mount_path,
                         dataset_id, root)
