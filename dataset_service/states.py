"""Dataset states, the transitions between them and who may make them; metadata edits.

    building -> draft | failed                 (the builder, never a person)
    draft -> released                          (data-managers, admins)
    released -> published                      (data-managers, admins)
    draft | released | published -> invalidated (data-managers, admins)

``invalidated`` and ``failed`` are final; an invalidation always carries a
reason (``MIN_INVALIDATION_REASON``), checked here for the API, the command
line and the pages alike. An invalidated dataset can no longer be used for new
sessions (the governance rules refuse it).

Content (studies, manifest, name, version, previous version) never changes
after creation: a new version is a new dataset. The fields in
``EDITABLE_FIELDS`` (description, licence, tags, contact) do not alter the
content and may change while the dataset is draft, released or published.
"""
from __future__ import annotations

from .models import DatasetState as S

TRANSITIONS: dict[S, set[S]] = {
    S.building: set(),  # the builder moves it on
    S.draft: {S.released, S.invalidated},
    S.released: {S.published, S.invalidated},
    S.published: {S.invalidated},
    S.invalidated: set(),
    S.failed: set(),
}
TRACE_ACTION = {S.released: "RELEASE_DATASET", S.published: "PUBLISH_DATASET",
                S.invalidated: "INVALIDATE_DATASET"}
EDITABLE_FIELDS = ("description", "license", "tags", "contact")
MIN_INVALIDATION_REASON = 3  # characters: an invalidation always says why (API, command line and pages)
EDITABLE_STATES = {S.draft, S.released, S.published}
VISIBLE_TO_READERS = {S.released, S.published, S.invalidated}


class TransitionError(ValueError):
    pass


def check_transition(current: S, target: S, reason: str = "") -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(t.value for t in TRANSITIONS[current])) or "none"
        raise TransitionError(f"cannot go from {current.value} to {target.value} (allowed: {allowed})")
    if target == S.invalidated and len(reason.strip()) < MIN_INVALIDATION_REASON:
        raise TransitionError(f"a reason ({MIN_INVALIDATION_REASON} characters or more) is required to invalidate "
                              "a dataset")
