"""Role, project, service and scope names of the platform: the one place they are spelled.

Roles and projects are JupyterHub groups: a user's roles are the groups in
``ROLES``; a project is a group ``project-<code>``. Each web service requires
its own access scope (``access_scope(name)``) on every token it accepts.
"""
from __future__ import annotations

import enum


class Role(str, enum.Enum):
    """A role is the hub group of the same name."""

    RESEARCHERS = "researchers"
    DATA_MANAGERS = "data-managers"
    DAC = "dac"
    AUDITORS = "auditors"
    ADMINS = "admins"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)
#: the roles that read the catalogue and their own notifications (admins pass every role check anyway)
READERS: tuple[str, ...] = (Role.RESEARCHERS.value, Role.DATA_MANAGERS.value, Role.DAC.value, Role.AUDITORS.value)
PROJECT_PREFIX = "project-"

# the platform's JupyterHub services
SERVICE_DATASET = "dataset-service"
SERVICE_TRACER = "tracer"
SERVICE_HUB = "insitu-hub"
SERVICE_CHAIN = "dev-chain"
#: Kyverno's admission check: may read sessions at the dataset service, nothing else.
SERVICE_ADMISSION = "insitu-admission"


def project_group(code: str) -> str:
    """The hub group of a project code (``lung`` -> ``project-lung``)."""
    return PROJECT_PREFIX + code


def project_of(group: str) -> str | None:
    """The project code of a hub group, ``None`` when the group is not a project."""
    if group.startswith(PROJECT_PREFIX) and len(group) > len(PROJECT_PREFIX):
        return group[len(PROJECT_PREFIX):]
    return None


def access_scope(service: str) -> str:
    """The JupyterHub scope that lets a token reach ``service`` at all."""
    return f"access:services!service={service}"
