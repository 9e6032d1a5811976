"""Tracer settings, from the environment (prefix ``TRACER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class TracerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRACER_", extra="ignore")

    database_url: str = Field(
        f"sqlite:///{ROOT / 'var' / 'db' / 'tracer.sqlite'}",
        description="SQLAlchemy URL; SQLite (embedded default) or postgresql+psycopg://...",
    )
    chain_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC URL of any node of the chain")
    contract_address: str | None = Field(
        None,
        description="address of the deployed TraceAnchor; when unset the tracer deploys it once "
        "and remembers the address in its database",
    )
    key_file: Path | None = Field(
        None, description="file holding the tracer account's private key (hex); default var/chain/tracer.key if present"
    )
    private_key: str | None = Field(None, description="the key itself (e.g. from a Kubernetes secret); prefer key_file")
    chain_id: int | None = Field(None, description="expected chain id; the tracer refuses a node on another chain")
    gas_price: int | None = Field(
        None, description="gas price in wei for anchor transactions; unset: ask the node (0 on free-gas Besu networks)"
    )
    gas_limit: int = Field(200_000, description="gas limit of one anchor transaction")
    poa: bool = Field(True, description="inject the POA extraData middleware (QBFT/IBFT/Clique blocks)")

    hub_api_url: str | None = Field(None, description="JupyterHub API URL, e.g. http://127.0.0.1:8081/hub/api")
    writer_services: list[str] = Field(
        ["dataset-service", "insitu-hub"], description="hub services allowed to post traces (JSON list in the environment)"
    )
    platform_services: list[str] = Field(
        ["insitu-hub", "dataset-service"],
        description="hub services that may read /health and /metrics (JSON list in the environment)",
    )
    service_prefix: str = Field("/services/tracer", description="URL prefix the hub proxy routes to the tracer")
    host: str = "127.0.0.1"
    port: int = 8102

    batch_max: int = Field(5000, ge=1, description="most traces in one anchor; 1 = one transaction per trace")
    batch_wait: float = Field(0.5, ge=0, description="seconds to gather traces before anchoring a partial batch")
    receipt_timeout: float = Field(120.0, description="seconds to wait for an anchor's receipt before re-checking")
    retry_initial: float = Field(0.5, description="first back-off after a chain failure (seconds)")
    retry_max: float = Field(30.0, description="longest back-off after repeated chain failures (seconds)")
    run_batcher: bool = Field(True, description="run the anchoring loop inside the service")
    sqlite_synchronous: str = Field(
        "FULL", description="SQLite synchronous pragma: FULL survives power loss, NORMAL only process crashes"
    )
