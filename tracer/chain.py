"""The anchor contract on an Ethereum-compatible chain, through web3.py.

One code path for the local dev chain (anvil) and Hyperledger Besu:

* transactions are signed locally (``eth_account``, fast with ``coincurve``)
  and sent with ``eth_sendRawTransaction``: the node never holds the key;
* legacy (type 0) transactions with an explicit ``gasPrice``, which is 0 on
  free-gas Besu networks (``min-gas-price=0``) and the node's price otherwise;
* the chain id is signed into every transaction (EIP-155) and checked against
  the expected one;
* the POA ``extraData`` middleware, since QBFT/IBFT/Clique blocks carry more
  than 32 bytes of extraData;
* the contract is deployed once: a configured or remembered address must hold
  exactly this contract's runtime code and be owned by the tracer's account,
  otherwise ``ChainError`` — never a silent redeploy.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
import rlp
from eth_utils import keccak, to_bytes, to_checksum_address
from web3 import Web3
from web3.exceptions import TransactionNotFound
from web3.middleware import ExtraDataToPOAMiddleware

ARTEFACT = Path(__file__).resolve().parent / "contracts" / "TraceAnchor.json"


class ChainError(Exception):
    """A misconfiguration or an inconsistency that retrying cannot fix."""


def load_artefact() -> dict[str, Any]:
    return json.loads(ARTEFACT.read_text())


def read_key(key_file: Path | str | None = None, private_key: str | None = None) -> str:
    if private_key:
        key = private_key.strip()
    elif key_file:
        key = Path(key_file).read_text().strip()
    else:
        raise ChainError("no account key: set TRACER_KEY_FILE (or TRACER_PRIVATE_KEY)")
    if not key.startswith("0x"):
        key = "0x" + key
    if len(key) != 66:
        raise ChainError("the account key must be 32 bytes of hex")
    return key


ANCHORED_TOPIC = "0x" + keccak(text="Anchored(uint64,uint64,uint64,bytes32,bytes32)").hex()


@dataclass(frozen=True)
class AnchorEvent:
    batch: int
    first_seq: int
    last_seq: int
    root: bytes
    previous_root: bytes
    tx_hash: str
    block_number: int


def _hex(h: Any) -> str:
    s = h.hex() if isinstance(h, (bytes, bytearray)) else str(h)
    return s if s.startswith("0x") else "0x" + s


def connect(url: str, *, poa: bool = True, timeout: float = 10.0) -> Web3:
    """A Web3 over HTTP JSON-RPC; no automatic retries (the batcher backs off itself)."""
    provider = Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
    w3 = Web3(provider)
    if poa:
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def anchor_contract(w3: Web3, address: str):
    return w3.eth.contract(address=to_checksum_address(address), abi=load_artefact()["abi"])


def decode_anchor(contract, log) -> AnchorEvent:
    ev = contract.events.Anchored().process_log(log)
    a = ev["args"]
    return AnchorEvent(
        batch=a["batch"], first_seq=a["firstSeq"], last_seq=a["lastSeq"], root=bytes(a["root"]),
        previous_root=bytes(a["previousRoot"]), tx_hash=_hex(ev["transactionHash"]), block_number=ev["blockNumber"],
    )


def anchor_events(w3: Web3, address: str, *, first_seq: int | None = None, from_block: int = 0) -> list[AnchorEvent]:
    """Anchored events of the contract (optionally only the one starting at ``first_seq``), in order."""
    contract = anchor_contract(w3, address)
    topics: list[Any] = [ANCHORED_TOPIC, None]
    if first_seq is not None:
        topics.append("0x" + first_seq.to_bytes(32, "big").hex())
    logs = w3.eth.get_logs(
        {"address": to_checksum_address(address), "topics": topics, "fromBlock": from_block, "toBlock": "latest"}
    )
    return [decode_anchor(contract, log) for log in logs]


class Chain:
    """The tracer's account and its anchor contract."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        chain_id: int | None = None,
        gas_price: int | None = None,
        gas_limit: int = 200_000,
        poa: bool = True,
        timeout: float = 10.0,
    ):
        self.url = url
        self.w3 = connect(url, poa=poa, timeout=timeout)
        self.account = Account.from_key(key)
        self.expected_chain_id = chain_id
        self.gas_price = gas_price
        self.gas_limit = gas_limit
        self.address: str | None = None
        self._chain_id: int | None = None
        self._artefact = load_artefact()

    # --- node ------------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            cid = self.w3.eth.chain_id
            if self.expected_chain_id is not None and cid != self.expected_chain_id:
                raise ChainError(f"the node is on chain {cid}, expected {self.expected_chain_id}")
            self._chain_id = cid
        return self._chain_id

    def _gas_price(self) -> int:
        return self.gas_price if self.gas_price is not None else self.w3.eth.gas_price

    def _sign(self, tx: dict[str, Any]) -> tuple[str, bytes]:
        signed = self.account.sign_transaction(tx)
        return _hex(signed.hash), bytes(signed.raw_transaction)

    def send_raw(self, raw: bytes) -> None:
        """Broadcast; an identical transaction already in the pool is fine."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as e:  # node-specific wording of "already known"
            msg = str(e).lower()
            if "already known" in msg or "already imported" in msg or "known transaction" in msg:
                return
            raise

    def receipt(self, tx_hash: str) -> Any | None:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def wait_receipt(self, tx_hash: str, timeout: float, poll: float = 0.05) -> Any | None:
        deadline = time.monotonic() + timeout
        while True:
            r = self.receipt(tx_hash)
            if r is not None:
                return r
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll)

    def nonce(self, block: str = "pending") -> int:
        return self.w3.eth.get_transaction_count(self.account.address, block)

    # --- deployment ----------------------------------------------------------------
    def deploy_tx(self) -> tuple[str, str, bytes, int]:
        """Sign (not send) the deployment: (future contract address, tx hash, raw tx, nonce)."""
        nonce = self.nonce()
        tx = {
            "data": self._artefact["bytecode"], "gas": 1_000_000, "gasPrice": self._gas_price(),
            "nonce": nonce, "chainId": self.chain_id, "value": 0,
        }
        h, raw = self._sign(tx)
        address = to_checksum_address(keccak(rlp.encode([to_bytes(hexstr=self.account.address), nonce]))[12:])
        return address, h, raw, nonce

    def code_matches(self, address: str) -> bool | None:
        """True: this contract; False: other code; None: no code at the address."""
        code = bytes(self.w3.eth.get_code(to_checksum_address(address)))
        if not code:
            return None
        return "0x" + code.hex() == self._artefact["deployedBytecode"]

    def attach(self, address: str) -> None:
        """Use the contract at ``address``; ChainError if it is not ours."""
        match = self.code_matches(address)
        if match is None:
            raise ChainError(f"no contract at {address} on chain {self.chain_id}")
        if not match:
            raise ChainError(f"the contract at {address} is not the TraceAnchor this tracer was built with")
        c = anchor_contract(self.w3, address)
        owner = c.functions.owner().call()
        if owner.lower() != self.account.address.lower():
            raise ChainError(f"the TraceAnchor at {address} belongs to {owner}, not to this tracer ({self.account.address})")
        self.address = to_checksum_address(address)

    # --- anchoring ----------------------------------------------------------------
    @property
    def contract(self):
        if self.address is None:
            raise ChainError("no contract attached")
        return anchor_contract(self.w3, self.address)

    def contract_state(self) -> tuple[int, bytes, int]:
        """(nextSeq, lastRoot, batchCount) as the contract holds them."""
        c = self.contract
        return (
            c.functions.nextSeq().call(),
            bytes(c.functions.lastRoot().call()),
            c.functions.batchCount().call(),
        )

    def sign_anchor(self, root: bytes, first_seq: int, last_seq: int, previous_root: bytes, nonce: int) -> tuple[str, bytes]:
        data = self.contract.encode_abi("anchor", args=[root, first_seq, last_seq, previous_root])
        tx = {
            "to": self.address, "data": data, "gas": self.gas_limit, "gasPrice": self._gas_price(),
            "nonce": nonce, "chainId": self.chain_id, "value": 0,
        }
        return self._sign(tx)

    def find_anchor(self, first_seq: int) -> AnchorEvent | None:
        events = anchor_events(self.w3, self.address, first_seq=first_seq)
        return events[0] if events else None
