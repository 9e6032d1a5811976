"""Governance models on the service's shared ``Base``: access requests, their
votes and events, grants, and workspace sessions.

Schema changes go through Alembic (``migrations/versions/0101_governance.py``).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base
from ..models import utcnow
from .rules import Decision, RequestState


def _enum(cls, name):
    return Enum(cls, name=name, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class AccessRequest(Base):
    __tablename__ = "access_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    requester: Mapped[str] = mapped_column(String(255), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    intended_use: Mapped[str] = mapped_column(Text, default="")
    duration_days: Mapped[int] = mapped_column(Integer)
    state: Mapped[RequestState] = mapped_column(_enum(RequestState, "access_request_state"), index=True,
                                                default=RequestState.submitted)
    round: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # an extension asks for more time on a grant the project holds (the grant it extends)
    extends_grant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    votes: Mapped[list["Vote"]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                               order_by="Vote.id")
    events: Mapped[list["RequestEvent"]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                        order_by="RequestEvent.id")
    grant: Mapped["Grant | None"] = relationship(back_populates="request", uselist=False)
    rounds: Mapped[list["RequestRound"]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                        order_by="RequestRound.round")


class RequestRound(Base):
    """What the requester submitted in each round (the committee compares rounds)."""

    __tablename__ = "access_request_rounds"
    __table_args__ = (UniqueConstraint("request_id", "round", name="uq_access_request_rounds"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(Text)
    intended_use: Mapped[str] = mapped_column(Text, default="")
    duration_days: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    request: Mapped[AccessRequest] = relationship(back_populates="rounds")


class Vote(Base):
    __tablename__ = "access_votes"
    __table_args__ = (UniqueConstraint("request_id", "round", "reviewer", name="uq_access_votes_once_per_round"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(255))
    decision: Mapped[Decision] = mapped_column(_enum(Decision, "access_vote_decision"))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    request: Mapped[AccessRequest] = relationship(back_populates="votes")


class RequestEvent(Base):
    """Everything that happened to a request, in order (submitted, vote, changes, ...)."""

    __tablename__ = "access_request_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    request: Mapped[AccessRequest] = relationship(back_populates="events")


class Grant(Base):
    __tablename__ = "access_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    project: Mapped[str] = mapped_column(String(128), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    granted_by: Mapped[list] = mapped_column(JSON, default=list)  # the approving reviewers
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    revoked_by: Mapped[str | None] = mapped_column(String(255))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    request: Mapped[AccessRequest | None] = relationship(back_populates="grant")


class WorkSession(Base):
    """A workspace session the hub opened on some datasets for (user, project)."""

    __tablename__ = "work_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str] = mapped_column(String(64), default="")
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    closed_by: Mapped[str | None] = mapped_column(String(255))
    # why it ended (rules.END_REASONS): stopped, revoked, invalidated, expired, crashed, failed_start
    end_reason: Mapped[str | None] = mapped_column(String(16))
    datasets: Mapped[list["SessionDataset"]] = relationship(back_populates="session", cascade="all, delete-orphan",
                                                            order_by="SessionDataset.dataset_id")


class SessionDataset(Base):
    __tablename__ = "work_session_datasets"
    session_id: Mapped[str] = mapped_column(ForeignKey("work_sessions.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True, index=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("access_grants.id"), index=True)
    manifest_root: Mapped[str] = mapped_column(String(64), default="")
    session: Mapped[WorkSession] = relationship(back_populates="datasets")
    grant: Mapped[Grant] = relationship()
