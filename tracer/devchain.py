"""The local dev chain: anvil (npm ``@foundry-rs/anvil``) speaking Ethereum JSON-RPC.

``python -m tracer dev-chain`` runs it for the embedded default with its state
kept on disk (``--state``), zero gas price and zero base fee like a free-gas
Besu network, and writes the key of the tracer's account (anvil's first dev
account) to a key file. Tests start their own instance with ``start_anvil``
on a free port, with automine or ``--block-time N``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from insitu.waiting import exit_of, wait_for_answer
from tracer.settings import ROOT

ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
DEV_CHAIN_ID = 31337
# anvil's well-known dev accounts (mnemonic "test test ... junk"): NEVER use on a real network
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Anvil:
    process: subprocess.Popen
    port: int
    url: str
    log_path: Path | None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def anvil_args(port: int, *, host: str = "127.0.0.1", block_time: float | None = None, state: Path | None = None,
               chain_id: int = DEV_CHAIN_ID) -> list[str]:
    args = [str(ANVIL), "--host", host, "--port", str(port), "--chain-id", str(chain_id),
            "--gas-price", "0", "--base-fee", "0", "--accounts", str(len(DEV_KEYS))]
    if block_time:
        args += ["--block-time", str(block_time)]
    if state is not None:
        args += ["--state", str(state), "--state-interval", "5"]
    return args


def wait_rpc(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    chain_id = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    if not wait_for_answer(lambda: httpx.post(url, json=chain_id, timeout=2), deadline=time.monotonic() + timeout,
                           interval=0.1, exited=exit_of(process, "anvil")):
        raise RuntimeError(f"no JSON-RPC answer from {url} within {timeout}s")


def start_anvil(*, port: int | None = None, block_time: float | None = None, state: Path | None = None,
                log_path: Path | None = None, extra_args: list[str] | None = None) -> Anvil:
    port = port or free_port()
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    args = anvil_args(port, block_time=block_time, state=state) + list(extra_args or [])
    proc = subprocess.Popen(args, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_rpc(url, process=proc)
    except Exception:
        proc.kill()
        raise
    return Anvil(proc, port, url, log_path)


def write_dev_key(path: Path) -> Path:
    """Write anvil's first dev key (the embedded default's tracer account) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(DEV_KEYS[0] + "\n")
    return path


def run_dev_chain(*, port: int = 8545, state_dir: Path | None = None, block_time: float | None = None) -> int:
    """Foreground dev chain for the embedded default (state under var/chain/)."""
    state_dir = state_dir or ROOT / "var" / "chain"
    state_dir.mkdir(parents=True, exist_ok=True)
    write_dev_key(state_dir / "tracer.key")
    proc = subprocess.Popen(anvil_args(port, block_time=block_time, state=state_dir / "state.json"))

    def forward(sig, _frame):
        proc.send_signal(signal.SIGINT)  # anvil dumps its state on SIGINT/SIGTERM

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return proc.wait()
