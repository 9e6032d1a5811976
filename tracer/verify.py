"""The offline verifier: traces + proofs, checked against the chain alone.

It never talks to the tracer. Input: records as the tracer exports them
(``GET /traces?format=jsonl``, or ``GET /traces/{id}``), each
``{"seq", "trace", "proof", "anchor": {"first_seq", "last_seq", ...}}``.
Only ``seq``, ``trace``, ``proof`` and the batch range are used; every hash is
recomputed and every claim about the chain is read from the chain:

1. the contract at the given address has exactly the TraceAnchor runtime code;
2. every ``Anchored`` event of the contract, in order: batch numbers 0, 1, ...,
   the first batch starts at sequence 1, each starts right after the previous
   one and names the previous root (the chain of anchors has no gap);
3. for each trace: canonical JSON (``insitu.trace``) → leaf hash → Merkle
   proof at position ``seq - first_seq`` in a tree of the batch's size →
   root, which must equal the root of the chain's event for that batch;
4. completeness of the file (unless ``partial``): sequence numbers contiguous,
   no duplicates, and every batch it touches present in full.

Any changed byte in a trace, a proof or a sequence number changes a leaf, a
path or a root and is reported.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydantic import ValidationError

from insitu import merkle
from tracer.chain import AnchorEvent, anchor_events, connect, load_artefact
from insitu.trace import Trace, canonical_json, leaf_hash
from tracer.store import ZERO_ROOT


@dataclass
class Report:
    verified: int = 0
    batches: int = 0
    chain_anchors: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.verified > 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "verified": self.verified, "batches": self.batches, "chain_anchors": self.chain_anchors,
                "first_seq": self.first_seq, "last_seq": self.last_seq, "errors": self.errors}


def _b32(x: Any) -> bytes:
    if not isinstance(x, str):
        raise ValueError("not a hex string")
    s = x[2:] if x.startswith("0x") else x
    b = bytes.fromhex(s)
    if len(b) != 32:
        raise ValueError("not 32 bytes")
    return b


def check_anchor_chain(events: list[AnchorEvent]) -> list[str]:
    errors = []
    expect_seq, prev_root = 1, ZERO_ROOT
    for i, ev in enumerate(events):
        if ev.batch != i:
            errors.append(f"anchor #{i} on the chain is numbered {ev.batch}")
        if ev.first_seq != expect_seq:
            errors.append(f"anchor {ev.batch} starts at sequence {ev.first_seq}, expected {expect_seq}")
        if ev.previous_root != prev_root:
            errors.append(f"anchor {ev.batch} does not link to the previous root")
        expect_seq, prev_root = ev.last_seq + 1, ev.root
    return errors


def verify_records(records: Iterable[dict[str, Any]], events: list[AnchorEvent], *, partial: bool = False) -> Report:
    """Verify records against the contract's events (already read from the chain)."""
    rep = Report(chain_anchors=len(events))
    rep.errors += check_anchor_chain(events)
    by_first = {ev.first_seq: ev for ev in events}
    seen: dict[int, str] = {}
    batches: dict[int, AnchorEvent] = {}
    for n, rec in enumerate(records, 1):
        where = f"record {n}"
        try:
            seq = rec["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError("seq is not an integer")
            where = f"record {n} (seq {seq})"
            trace_obj = rec["trace"]
            canonical = canonical_json(trace_obj)
            # the trace must be a valid trace whose canonical form is exactly what was exported
            if Trace.model_validate(trace_obj).canonical_bytes() != canonical:
                raise ValueError("the trace is not in canonical form")
            leaf = leaf_hash(canonical)
            anchor = rec.get("anchor")
            if not anchor:
                raise ValueError("not anchored")
            ev = by_first.get(anchor["first_seq"])
            if ev is None:
                raise ValueError(f"no anchor on the chain starts at sequence {anchor['first_seq']}")
            if not ev.first_seq <= seq <= ev.last_seq:
                raise ValueError(f"sequence {seq} is outside the anchored batch {ev.first_seq}..{ev.last_seq}")
            proof = [_b32(h) for h in rec.get("proof") or []]
            root = merkle.root_from_proof(leaf, seq - ev.first_seq, ev.last_seq - ev.first_seq + 1, proof)
            if root != ev.root:
                raise ValueError("the proof does not lead to the root anchored on the chain")
        except (KeyError, TypeError, ValueError, ValidationError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            rep.errors.append(f"{where}: {msg}")
            continue
        if seq in seen:
            rep.errors.append(f"{where}: sequence number appears twice")
            continue
        seen[seq] = trace_obj.get("id")
        batches[ev.first_seq] = ev
        rep.verified += 1
    if seen:
        rep.first_seq, rep.last_seq = min(seen), max(seen)
    rep.batches = len(batches)
    ids = [i for i in seen.values()]
    if len(set(ids)) != len(ids):
        rep.errors.append("a trace id appears under two sequence numbers")
    if not partial and seen:
        missing = [s for s in range(rep.first_seq, rep.last_seq + 1) if s not in seen]
        if missing:
            rep.errors.append(f"sequence numbers missing: {_ranges(missing)}")
        for ev in batches.values():
            absent = [s for s in range(ev.first_seq, ev.last_seq + 1) if s not in seen]
            if absent and not missing:
                rep.errors.append(f"batch {ev.batch} incomplete: missing {_ranges(absent)}")
    if not seen and not rep.errors:
        rep.errors.append("no traces to verify")
    return rep


def _ranges(nums: list[int]) -> str:
    out, start, prev = [], None, None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ", ".join(out[:20]) + (" …" if len(out) > 20 else "")


def read_records(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("{") and "\n" not in text:
        return [json.loads(text)]
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, list) else [obj]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def verify_against_chain(records: list[dict[str, Any]], chain_url: str, contract: str, *, poa: bool = True,
                         partial: bool = False) -> Report:
    w3 = connect(chain_url, poa=poa)
    code = bytes(w3.eth.get_code(w3.to_checksum_address(contract)))
    if "0x" + code.hex() != load_artefact()["deployedBytecode"]:
        rep = Report()
        rep.errors.append(f"{contract} does not hold the TraceAnchor contract")
        return rep
    events = anchor_events(w3, contract)
    return verify_records(records, events, partial=partial)


def main(args) -> int:
    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    try:
        records = read_records(text)
    except json.JSONDecodeError as e:
        print(f"FAILED: unreadable input: {e}")
        return 1
    rep = verify_against_chain(records, args.chain_url, args.contract, poa=not args.no_poa, partial=args.partial)
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
    else:
        for e in rep.errors:
            print("ERROR:", e)
        if rep.ok:
            print(f"OK: {rep.verified} traces (seq {rep.first_seq}..{rep.last_seq}) in {rep.batches} batches verified; "
                  f"the chain holds {rep.chain_anchors} contiguous anchors")
        else:
            print(f"FAILED: {len(rep.errors)} problem(s); {rep.verified} traces verified")
    return 0 if rep.ok else 1
