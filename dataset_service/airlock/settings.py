"""Settings of the export airlock, from the environment (prefix ``INSITU_AIRLOCK_``)."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..settings import VAR
from .findings import Limits


class AirlockSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSITU_AIRLOCK_", extra="ignore")

    store_dir: Path = Field(VAR / "airlock", description="Host folder of the frozen, content-addressed export store.")
    homes_root: Path = Field(
        VAR / "homes", description="Host folder holding the workspace homes, one per user and project (<root>/<user>/<project>).")
    reviewer_roles: list[str] = Field(
        ["data-managers", "dac"], description="Hub roles whose members review export requests (never the requester).")
    quorum: int = Field(1, ge=1, description="Approvals of distinct reviewers that release a request.")
    high_quorum: int = Field(
        2, ge=1, description="Approvals of distinct reviewers needed when any file has a High finding "
                             "(OpenSAFELY's rule: two independent reviewers).")
    max_files: int = Field(50, ge=1, description="Most files in one export request.")
    max_file_size: int = Field(512 * 1024 * 1024, ge=1, description="Largest single file accepted (bytes).")
    max_request_size: int = Field(2 * 1024 * 1024 * 1024, ge=1, description="Largest request in total (bytes).")
    large_file: int = Field(50 * 1024 * 1024, ge=1, description="Files above this size are flagged for review.")
    volume_min_extent: int = Field(
        32, ge=2, description="An array with three extents at least this large is flagged as an image volume.")
    volume_min_slices: int = Field(
        0, ge=0, description="Slices (the third extent) that make an array a volume; 0: calibrated on the lake, "
                             "the fewest slices of a catalogued series with two or more, never fewer than 4.")
    image_min_extent: int = Field(256, ge=2, description="A 2-D array with both extents this large is flagged.")
    min_rows_per_subject: int = Field(
        5, ge=1, description="Tables with fewer rows per subject (median) are flagged as individual-level data.")
    min_cell_count: int = Field(5, ge=1, description="Counts below this in a count column are flagged.")
    subject_pattern: str = Field(r"sub-\d{3,}", description="Regular expression of the lake's subject ids.")
    max_justification: int = Field(4000, ge=10, description="Longest justification accepted (characters).")

    @field_validator("reviewer_roles", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):
            return [r.strip() for r in v.split(",") if r.strip()]
        return v

    def limits(self, lake_min_slices: int | None = None) -> Limits:
        """The thresholds; ``lake_min_slices``: the fewest slices of a multi-slice series of the lake."""
        slices = self.volume_min_slices or max(4, lake_min_slices or 8)
        return Limits(
            large_file=self.large_file,
            volume_min_extent=self.volume_min_extent,
            volume_min_slices=slices,
            image_min_extent=self.image_min_extent,
            min_rows_per_subject=self.min_rows_per_subject,
            min_cell_count=self.min_cell_count,
            subject_pattern=self.subject_pattern,
        )
