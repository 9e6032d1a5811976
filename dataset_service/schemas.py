"""Pydantic request and response bodies of the API."""
from __future__ import annotations

from typing import Any, Generic, TypeVar

import datetime as dt

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema
from typing_extensions import Annotated

from insitu.httpapi import UtcDateTime

from .catalogue import _VALUE
from .models import DatasetState
from .states import MIN_INVALIDATION_REASON
from .paths import NAME_RE, check_study_id

FilterValue = Annotated[str, StringConstraints(pattern=_VALUE.pattern)]


def _study_id(v: str) -> str:
    check_study_id(v)  # UnsafePath (a ValueError) names what is wrong: traversal, absolute, bad name
    return v


# '<subject>/<study>', each a safe name: checked by paths.check_study_id, declared as a pattern
StudyId = Annotated[str, AfterValidator(_study_id), WithJsonSchema(
    {"type": "string", "maxLength": 300, "pattern": NAME_RE.pattern[:-1] + "/" + NAME_RE.pattern[1:]})]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:+-]*$")]
T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    total: int
    limit: int
    offset: int
    items: list[T]


class SeriesOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    series_uid: str | None
    modality: str | None
    body_part: str | None
    n_files: int
    size: int


class StudyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    subject_id: str
    name: str
    study_uid: str | None
    study_date: str | None
    description: str | None
    modalities: str
    body_part: str | None
    n_series: int
    n_files: int
    size: int
    digest: str | None


class StudyDetail(StudyOut):
    series: list[SeriesOut]


_ONE_SELECTION = [
    {"required": ["study_ids"], "properties": {"study_ids": {"type": "array"}}},
    {"required": ["query"], "properties": {"query": {"type": "object"}}},
    {"required": ["all_studies"], "properties": {"all_studies": {"const": True}}},
]


class CatalogueQuery(BaseModel):
    """Catalogue filters (``catalogue.FILTERS``); every one optional, none other accepted."""

    model_config = ConfigDict(extra="forbid")
    subject: FilterValue | None = None
    modality: FilterValue | None = None
    body_part: FilterValue | None = None
    cancer_type: FilterValue | None = None
    sex: FilterValue | None = None
    age_group: FilterValue | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


class DatasetCreate(BaseModel):
    """Give exactly one selection: ``study_ids``, ``query`` or ``all_studies: true``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": _ONE_SELECTION})
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    description: str = Field("", max_length=10000)
    license: str = Field("", max_length=200)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    contact: str = Field("", max_length=255)
    previous_id: str | None = Field(None, max_length=64)
    study_ids: list[StudyId] | None = Field(None, description="study ids '<subject>/<study>'")
    query: CatalogueQuery | None = Field(None, description="catalogue filters (see GET /api/catalogue/filters)")
    all_studies: bool = False

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.study_ids is not None) + (self.query is not None) + bool(self.all_studies) != 1:
            raise ValueError("give exactly one of: study_ids, query, all_studies")
        return self


class DatasetUpdate(BaseModel):
    """Only fields that do not alter the content; anything else is refused (422)."""

    model_config = ConfigDict(extra="forbid")
    # null is not a value of these fields (the spec says so; the route answers 422 naming the field)
    description: Annotated[str, Field(max_length=10000)] | SkipJsonSchema[None] = None
    license: Annotated[str, Field(max_length=200)] | SkipJsonSchema[None] = None
    tags: Annotated[list[Tag], Field(max_length=50)] | SkipJsonSchema[None] = None
    contact: Annotated[str, Field(max_length=255)] | SkipJsonSchema[None] = None


class Transition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: DatasetState
    reason: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _reason_to_invalidate(self) -> "Transition":
        if self.state == DatasetState.invalidated and len(self.reason.strip()) < MIN_INVALIDATION_REASON:
            raise ValueError(f"a reason ({MIN_INVALIDATION_REASON} characters or more) is required to invalidate "
                             "a dataset")
        return self


class _DatasetMetadata(BaseModel):
    """What every answer about a dataset starts with: its name, version and citable metadata."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    version: int
    description: str
    license: str
    tags: list[str]
    contact: str
    previous_id: str | None


class DatasetOut(_DatasetMetadata):
    state: DatasetState
    gid: int
    merkle_root: str | None
    n_studies: int
    n_files: int
    size: int
    created_by: str
    created_at: UtcDateTime
    updated_at: UtcDateTime
    report: dict | None = None  # what the selection left out and why (also in manifest.json)


class PublicDataset(_DatasetMetadata):
    """What anyone may see of a published dataset (citable metadata)."""

    merkle_root: str | None
    n_studies: int
    created_at: UtcDateTime


class BuildStatus(BaseModel):
    dataset_id: str
    state: DatasetState
    phase: str
    done: int
    total: int
    attempts: int
    error: str | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    seq: int
    at: UtcDateTime
    actor: str
    action: str
    detail: dict[str, Any] | None


class CheckOut(BaseModel):
    dataset_id: str
    ok: bool
    files_checked: int
    problems: list[dict[str, str]]


class IndexRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    started_at: UtcDateTime
    finished_at: UtcDateTime | None
    requested_by: str | None
    stats: dict[str, Any] | None
