"""The batcher: pending traces -> Merkle root -> one anchor transaction.

Crash safety (the tracer may be killed between any two steps):

1. ``prepare``: the batch row (range, root, previous root) and every trace's
   proof are written in one transaction (state ``prepared``).
2. ``sign``: the transaction is signed locally and its hash, nonce and raw
   bytes are stored (state ``signed``) BEFORE it is broadcast.
3. ``send`` and wait for the receipt; then state ``anchored`` with the block.

On (re)start the batch in flight is settled from the chain, never from
memory: a receipt for the stored hash, else the contract's ``Anchored`` event
for the batch's first sequence number (the batch was anchored by an earlier
transaction), else the contract must still expect this batch (``nextSeq`` and
``lastRoot``), and the same raw transaction is broadcast again (or re-signed
with a fresh nonce if that nonce was used). The contract itself refuses an
overlap, so even a duplicate broadcast cannot anchor a batch twice.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

from tracer.chain import Chain, ChainError
from tracer.metrics import Metrics
from tracer.store import ZERO_ROOT, BatchInfo, TraceStore

log = logging.getLogger("tracer.batcher")


def failpoint(name: str) -> None:
    """Crash tests: ``TRACER_FAILPOINT=<name>`` kills this process with SIGKILL at that point."""
    if os.environ.get("TRACER_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class BatcherConfig:
    batch_max: int = 5000
    batch_wait: float = 0.5
    receipt_timeout: float = 120.0
    retry_initial: float = 0.5
    retry_max: float = 30.0


class Batcher:
    def __init__(self, store: TraceStore, chain: Chain, config: BatcherConfig | None = None,
                 metrics: Metrics | None = None, contract_address: str | None = None):
        self.store = store
        self.chain = chain
        self.config = config or BatcherConfig()
        self.metrics = metrics
        self.contract_address = contract_address
        self.ready = False
        self.fatal: str | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- contract ------------------------------------------------------------------
    def ensure_contract(self) -> str:
        """Attach to (or deploy once) the anchor contract and check it agrees with the database."""
        cid = self.chain.chain_id
        stored_cid = self.store.get_meta("chain_id")
        if stored_cid is not None and int(stored_cid) != cid:
            raise ChainError(f"this tracer's database anchors to chain {stored_cid}, the node is on chain {cid}")
        stored = self.store.get_meta("contract_address")
        configured = self.contract_address
        if configured and stored and configured.lower() != stored.lower():
            raise ChainError(f"TRACER_CONTRACT_ADDRESS {configured} differs from {stored}, where this database's traces are anchored")
        address = configured or stored
        if address:
            self.chain.attach(address)
        else:
            self.chain.attach(self._deploy())
        if stored_cid is None:
            self.store.set_meta("chain_id", str(cid))
        if not stored:
            self.store.set_meta("contract_address", self.chain.address)
        self._check_consistency()
        self.ready = True
        return self.chain.address

    def _deploy(self) -> str:
        pending = self.store.get_meta("deploy_pending")
        if pending:
            p = json.loads(pending)
            match = self.chain.code_matches(p["address"])
            if match:
                return p["address"]
            if match is None and self.chain.nonce("latest") <= p["nonce"]:
                self.chain.send_raw(bytes.fromhex(p["raw"]))
                if self.chain.wait_receipt(p["tx_hash"], self.config.receipt_timeout) is not None:
                    return p["address"]
        address, tx_hash, raw, nonce = self.chain.deploy_tx()
        self.store.set_meta("deploy_pending", json.dumps({"address": address, "tx_hash": tx_hash, "raw": raw.hex(), "nonce": nonce}))
        self.chain.send_raw(raw)
        receipt = self.chain.wait_receipt(tx_hash, self.config.receipt_timeout)
        if receipt is None or receipt["status"] != 1:
            raise ChainError("deploying the TraceAnchor contract failed")
        log.info("deployed TraceAnchor at %s", address)
        return address

    def _check_consistency(self) -> None:
        next_seq, last_root, _count = self.chain.contract_state()
        last = self.store.last_batch()
        anchored = last if (last and last.state == "anchored") else None
        if last and last.state != "anchored":
            # the batch in flight may or may not have made it
            if next_seq == last.last_seq + 1 and last_root == last.root:
                return
            prev_next = last.first_seq
            prev_root = last.previous_root
        else:
            prev_next = (anchored.last_seq + 1) if anchored else 1
            prev_root = anchored.root if anchored else ZERO_ROOT
        if next_seq != prev_next or last_root != prev_root:
            raise ChainError(
                f"the contract's anchors (next seq {next_seq}) do not match this tracer's database (next seq {prev_next})"
            )

    # --- one step ------------------------------------------------------------------
    def step(self) -> bool:
        """Settle the batch in flight or anchor a new one; False when there was nothing to do."""
        batch = self.store.inflight_batch()
        if batch is None:
            n, age = self.store.oldest_unbatched_age()
            if n == 0 or (n < self.config.batch_max and (age or 0) < self.config.batch_wait):
                return False
            batch = self.store.prepare_batch(self.config.batch_max)
            if batch is None:
                return False
            failpoint("after_prepare")
        self.settle(batch)
        return True

    def _sign_and_send(self, batch: BatchInfo) -> str:
        nonce = self.chain.nonce("pending")
        tx_hash, raw = self.chain.sign_anchor(batch.root, batch.first_seq, batch.last_seq, batch.previous_root, nonce)
        self.store.mark_signed(batch.id, nonce, tx_hash, raw)  # stored before it is broadcast
        failpoint("after_sign")
        self.chain.send_raw(raw)
        failpoint("after_send")
        if self.metrics:
            self.metrics.anchors_sent.inc()
        return tx_hash

    def settle(self, batch: BatchInfo) -> None:
        if batch.state == "prepared":
            tx_hash = self._sign_and_send(batch)
        else:
            receipt = self.chain.receipt(batch.tx_hash)
            if receipt is not None and receipt["status"] == 1:
                self._anchored(batch, batch.tx_hash, receipt["blockNumber"])
                return
            ev = self.chain.find_anchor(batch.first_seq)
            if ev is not None:
                if ev.root != batch.root or ev.last_seq != batch.last_seq or ev.previous_root != batch.previous_root:
                    raise ChainError(f"the chain holds a different anchor for sequence {batch.first_seq}")
                self._anchored(batch, ev.tx_hash, ev.block_number)
                return
            next_seq, last_root, _ = self.chain.contract_state()
            if next_seq != batch.first_seq or last_root != batch.previous_root:
                raise ChainError(f"the contract expects sequence {next_seq}, batch {batch.id} starts at {batch.first_seq}")
            if receipt is None and batch.nonce is not None and batch.nonce >= self.chain.nonce("latest"):
                self.chain.send_raw(batch.raw_tx)  # not mined yet (or dropped): the same transaction again
                tx_hash = batch.tx_hash
            else:  # reverted, or its nonce went to another transaction: a fresh one
                tx_hash = self._sign_and_send(batch)
        receipt = self.chain.wait_receipt(tx_hash, self.config.receipt_timeout)
        if receipt is None:
            raise TimeoutError(f"no receipt for {tx_hash} within {self.config.receipt_timeout}s")
        if receipt["status"] != 1:
            raise RuntimeError(f"anchor transaction {tx_hash} reverted")
        self._anchored(batch, tx_hash, receipt["blockNumber"])

    def _anchored(self, batch: BatchInfo, tx_hash: str, block: int) -> None:
        self.store.mark_anchored(batch.id, tx_hash, block)
        if self.metrics:
            self.metrics.batches_anchored.inc()
            self.metrics.traces_anchored.inc(batch.size)
        log.info("batch %d (seq %d..%d) anchored in block %d", batch.id, batch.first_seq, batch.last_seq, block)

    # --- loop ------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        backoff = self.config.retry_initial
        while not stop.is_set():
            try:
                if not self.ready:
                    self.ensure_contract()
                worked = self.step()
                backoff = self.config.retry_initial
                if not worked:
                    stop.wait(min(0.02, self.config.batch_wait) or 0.005)
            except ChainError as e:
                self.fatal = str(e)
                log.error("anchoring stopped: %s", e)
                if self.metrics:
                    self.metrics.failures.inc()
                return
            except Exception as e:  # chain unreachable, timeouts, reverts: retry with back-off
                log.warning("anchoring failed (%s: %s); retrying in %.1fs", type(e).__name__, e, backoff)
                if self.metrics:
                    self.metrics.failures.inc()
                inflight = self.store.inflight_batch() if self._db_ok() else None
                if inflight is not None:
                    self.store.mark_error(inflight.id, f"{type(e).__name__}: {e}")
                stop.wait(backoff)
                backoff = min(backoff * 2, self.config.retry_max)

    def _db_ok(self) -> bool:
        try:
            self.store.last_seq()
            return True
        except Exception:
            return False

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="tracer-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            self._thread = None

    def drain(self, timeout: float = 60.0) -> None:
        """Anchor everything pending now (tests, benchmarks, CLI); raises on timeout."""
        deadline = time.monotonic() + timeout
        if not self.ready:
            self.ensure_contract()
        saved = self.config.batch_wait
        self.config.batch_wait = 0
        try:
            while self.step():
                if time.monotonic() > deadline:
                    raise TimeoutError("pending traces not anchored in time")
        finally:
            self.config.batch_wait = saved
