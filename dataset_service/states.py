"""Dataset states, the transitions between them and who may make them; metadata edits.

    building -> draft | failed                 (the builder, never a person)
    draft -> released                          (data-managers, admins)
    released -> published                      (data-managers, admins)
    draft | released | published -> invalidated (data-managers, admins)

``invalidated`` and ``failed`` are final. An invalidated dataset can no longer
be used for new sessions (``usable_for_sessions``).

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
TRANSITION_ROLES = ("data-managers",)  # admins pass every role check
TRACE_ACTION = {S.released: "RELEASE_DATASET", S.published: "PUBLISH_DATASET",
                S.invalidated: "INVALIDATE_DATASET"}
EDITABLE_FIELDS = ("description", "license", "tags", "contact")
EDITABLE_STATES = {S.draft, S.released, S.published}
VISIBLE_TO_READERS = {S.released, S.published, S.invalidated}


class TransitionError(ValueError):
    pass


def check_transition(current: S, target: S) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(t.value for t in TRANSITIONS[current])) or "none"
        raise TransitionError(f"cannot go from {current.value} to {target.value} (allowed: {allowed})")


def usable_for_sessions(state: S) -> bool:
    return state in (S.released, S.published)
