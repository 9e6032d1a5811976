"""SQLAlchemy models of the export airlock (on the service's shared ``Base``).

An :class:`ExportRequest` names frozen files (:class:`ExportFile`, by digest in
the frozen store) and collects reviews (:class:`ExportReview`, one per
reviewer). States: ``pending`` → ``approved`` | ``rejected`` | ``returned``
(returned for changes: the researcher files a new request that names it in
``replaces_id``). Only the files of an ``approved`` request leave, and only to
the requester.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from insitu.clock import utcnow

from ..db import Base

from .states import DECISIONS, STATES  # noqa: E402,F401  (the one place: states.py)


class ExportRequest(Base):
    __tablename__ = "export_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    requester: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str | None] = mapped_column(String(128), index=True)
    session_id: Mapped[str | None] = mapped_column(String(64), index=True)
    dataset_ids: Mapped[list] = mapped_column(JSON, default=list)
    justification: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    quorum: Mapped[int] = mapped_column(Integer, default=1)
    total_size: Mapped[int] = mapped_column(BigInteger, default=0)
    replaces_id: Mapped[str | None] = mapped_column(String(36))
    draft_id: Mapped[str | None] = mapped_column(String(64))  # the workspace draft it was submitted from
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    files: Mapped[list["ExportFile"]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                     order_by="ExportFile.position")
    reviews: Mapped[list["ExportReview"]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                         order_by="ExportReview.id")


class ExportFile(Base):
    __tablename__ = "export_files"
    __table_args__ = (UniqueConstraint("request_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("export_requests.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(1024))  # as named, relative to the home
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str | None] = mapped_column(String(8))
    findings: Mapped[list] = mapped_column(JSON, default=list)
    preview: Mapped[dict | None] = mapped_column(JSON)
    request: Mapped[ExportRequest] = relationship(back_populates="files")


class ExportReview(Base):
    __tablename__ = "export_reviews"
    __table_args__ = (UniqueConstraint("request_id", "reviewer"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("export_requests.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(255))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    # per file, when the reviewer decided file by file: [{"file_id", "decision", "comment"}]
    file_decisions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    request: Mapped[ExportRequest] = relationship(back_populates="reviews")
