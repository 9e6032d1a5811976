"""SQLAlchemy 2 models of the catalogue (subjects, studies, series, files) and of
datasets. Study id = ``<subject>/<study>``, the path relative to the lake.
"""
from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Enum, ForeignKey, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from insitu.clock import utcnow

from .db import Base


class Subject(Base):
    __tablename__ = "subjects"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    eform: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    cancer_type: Mapped[str | None] = mapped_column(String(64), index=True)
    age_group: Mapped[str | None] = mapped_column(String(32))
    sex: Mapped[str | None] = mapped_column(String(8))
    diagnosis_date: Mapped[str | None] = mapped_column(String(10))
    studies: Mapped[list["Study"]] = relationship(back_populates="subject", cascade="all, delete-orphan")


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[str] = mapped_column(String(511), primary_key=True)  # "<subject>/<study>"
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))  # folder name of the study
    study_uid: Mapped[str | None] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(10), index=True)  # YYYY-MM-DD
    description: Mapped[str | None] = mapped_column(String(255))
    modalities: Mapped[str] = mapped_column(String(64), default="", index=True)  # "CT,MR"
    body_part: Mapped[str | None] = mapped_column(String(64), index=True)
    n_series: Mapped[int] = mapped_column(Integer, default=0)
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    digest: Mapped[str | None] = mapped_column(String(64))
    indexed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    subject: Mapped[Subject] = relationship(back_populates="studies")
    series: Mapped[list["Series"]] = relationship(back_populates="study", cascade="all, delete-orphan")


class Series(Base):
    __tablename__ = "series"
    id: Mapped[str] = mapped_column(String(767), primary_key=True)  # "<subject>/<study>/<series>"
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    series_uid: Mapped[str | None] = mapped_column(String(64))
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    study: Mapped[Study] = relationship(back_populates="series")


class File(Base):
    """One DICOM instance. ``size``/``mtime_ns``/``inode`` are the hash cache key."""

    __tablename__ = "files"
    path: Mapped[str] = mapped_column(String(1023), primary_key=True)  # relative to the lake
    series_id: Mapped[str] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sop_uid: Mapped[str | None] = mapped_column(String(64))
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part: Mapped[str | None] = mapped_column(String(64))
    study_uid: Mapped[str | None] = mapped_column(String(64))
    series_uid: Mapped[str | None] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(10))
    study_description: Mapped[str | None] = mapped_column(String(255))


class IndexRun(Base):
    __tablename__ = "index_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    stats: Mapped[dict | None] = mapped_column(JSON)
    requested_by: Mapped[str | None] = mapped_column(String(255))


class IndexSkip(Base):
    """An entry the last index run left out of the catalogue, with the reason (replaced by every run).

    ``study_id`` is set when the entry lies inside a study folder; ``link`` marks
    symbolic links (a study holding one is unsafe: it is left out of datasets).
    """

    __tablename__ = "index_skips"
    path: Mapped[str] = mapped_column(String(1023), primary_key=True)  # relative to the lake
    study_id: Mapped[str | None] = mapped_column(String(511), index=True)
    reason: Mapped[str] = mapped_column(Text)
    link: Mapped[bool] = mapped_column(Boolean, default=False)
    run_id: Mapped[int | None] = mapped_column(Integer)


class DatasetState(str, enum.Enum):
    building = "building"
    draft = "draft"
    released = "released"
    published = "published"
    invalidated = "invalidated"
    failed = "failed"


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str] = mapped_column(Text, default="")
    license: Mapped[str] = mapped_column(String(255), default="")
    tags: Mapped[list] = mapped_column(JSON, default=list)
    contact: Mapped[str] = mapped_column(String(255), default="")
    previous_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"), nullable=True)
    state: Mapped[DatasetState] = mapped_column(
        Enum(DatasetState, name="dataset_state", native_enum=False, length=16),
        default=DatasetState.building, index=True)
    gid: Mapped[int] = mapped_column(Integer, unique=True)
    query: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    merkle_root: Mapped[str | None] = mapped_column(String(64))
    n_studies: Mapped[int] = mapped_column(Integer, default=0)
    n_files: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    build_phase: Mapped[str] = mapped_column(String(32), default="queued")
    build_attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # what the selection left out and why: {"left_out_studies": [{study, reason}], "left_out_files": [{path, reason}]}
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    studies: Mapped[list["DatasetStudy"]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetStudy.study_id")
    events: Mapped[list["DatasetEvent"]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetEvent.id")


class DatasetStudy(Base):
    __tablename__ = "dataset_studies"
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    study_id: Mapped[str] = mapped_column(String(511), primary_key=True)
    digest: Mapped[str | None] = mapped_column(String(64))
    dataset: Mapped[Dataset] = relationship(back_populates="studies")


class DatasetEvent(Base):
    """Audit history of a dataset: creation, state transitions, metadata edits."""

    __tablename__ = "dataset_events"
    __table_args__ = (UniqueConstraint("dataset_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))  # create, transition, update, build
    detail: Mapped[dict | None] = mapped_column(JSON)
    dataset: Mapped[Dataset] = relationship(back_populates="events")
