"""The service API tokens of the hub (names: ``insitu.names``, docs/CONTRACTS.md §1).

Embedded default: generated once and kept in ``<var>/secrets/service-tokens.json``
(0600). On Kubernetes: only from the chart's Secret, through ``INSITU_<SERVICE>_TOKEN``
variables; nothing is generated or written.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from hub.settings import InsituHub
from insitu.names import SERVICE_ADMISSION, SERVICE_CHAIN, SERVICE_DATASET, SERVICE_HUB, SERVICE_TRACER


def ensure_secrets(settings: InsituHub) -> dict[str, str]:
    """Create (once) and return the service API tokens of the embedded default.

    They are kept in ``<var>/secrets/service-tokens.json`` (mode 0600) so that a
    second start reuses them; ``proxy`` is the token between hub and proxy,
    ``pseudonym-key`` the key of the user pseudonyms in traces. On Kubernetes the tokens come from the chart's
    secrets through ``INSITU_<SERVICE>_TOKEN`` variables instead.
    """
    names = (SERVICE_DATASET, SERVICE_TRACER, SERVICE_CHAIN, SERVICE_HUB, SERVICE_ADMISSION, "proxy", "pseudonym-key")
    from_env = {n: os.environ.get(token_env(n)) for n in names}
    if all(from_env.values()):
        return dict(from_env)
    if settings.mode == "kubernetes":
        # the chart's Secret is the only source; nothing is generated or written
        needed = (SERVICE_DATASET, SERVICE_TRACER, SERVICE_HUB, SERVICE_ADMISSION)
        missing = [token_env(n) for n in needed if not from_env[n]]
        if missing:
            raise ValueError(f"kubernetes mode: set {', '.join(missing)} (from the chart's service-token Secret)")
        return {n: v for n, v in from_env.items() if v}
    folder = Path(settings.secrets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    store = folder / "service-tokens.json"
    tokens: dict[str, str] = {}
    if store.exists():
        tokens = json.loads(store.read_text())
    changed = False
    for name in names:
        if from_env[name]:
            tokens[name] = from_env[name]
        elif not tokens.get(name):
            tokens[name] = secrets.token_hex(32)
            changed = True
    if changed or not store.exists():
        tmp = store.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(tokens, fh, indent=1)
        os.replace(tmp, store)
    return tokens


def token_env(name: str) -> str:
    """The variable that carries a service's token: ``INSITU_<NAME>_TOKEN``."""
    return f"INSITU_{name.upper().replace('-', '_')}_TOKEN"


def hub_service_token(settings: InsituHub | None = None) -> str:
    """The ``insitu-hub`` token (for the spawner, which runs inside the hub)."""
    env = os.environ.get("INSITU_INSITU_HUB_TOKEN")
    if env:
        return env
    return ensure_secrets(settings or InsituHub())[SERVICE_HUB]
