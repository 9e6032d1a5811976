"""The anchor contract on a real anvil: source = artefact, refusals, idempotent deployment."""

import json
import subprocess

import pytest
from web3.exceptions import ContractCustomError

from tracer.chain import ARTEFACT, Chain, ChainError, load_artefact
from tracer.devchain import DEV_KEYS
from tracer.settings import ROOT
from tracer.store import ZERO_ROOT

from tracer_helpers import make_batcher


def test_artefact_matches_source():
    r = subprocess.run(["node", "tracer/contracts/build.js", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    art = load_artefact()
    import hashlib

    assert art["sourceSha256"] == hashlib.sha256((ARTEFACT.parent / "TraceAnchor.sol").read_bytes()).hexdigest()
    assert {e["name"] for e in art["abi"] if e["type"] == "function"} >= {"anchor", "owner", "nextSeq", "lastRoot", "batchCount"}


def deployed(store, anvil):
    b = make_batcher(store, anvil.url)
    b.ensure_contract()
    return b


R1, R2, R3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def call_anchor(chain: Chain, *args):
    return chain.contract.functions.anchor(*args).call({"from": chain.account.address})


def test_contract_refuses_gaps_overlaps_wrong_root_and_foreign_accounts(store, anvil):
    chain = deployed(store, anvil).chain
    # the first batch must start at 1 and link to the zero root
    with pytest.raises(ContractCustomError):
        call_anchor(chain, R1, 2, 10, ZERO_ROOT)  # gap
    with pytest.raises(ContractCustomError):
        call_anchor(chain, R1, 1, 10, R3)  # wrong previous root
    with pytest.raises(ContractCustomError):
        call_anchor(chain, ZERO_ROOT, 1, 10, ZERO_ROOT)  # empty root
    with pytest.raises(ContractCustomError):
        call_anchor(chain, R1, 5, 4, ZERO_ROOT)  # reversed range
    h, raw = chain.sign_anchor(R1, 1, 10, ZERO_ROOT, chain.nonce())
    chain.send_raw(raw)
    assert chain.wait_receipt(h, 10)["status"] == 1
    assert chain.contract_state() == (11, R1, 1)
    for args in [(R2, 10, 20, R1), (R2, 1, 10, ZERO_ROOT), (R2, 12, 20, R1), (R2, 11, 20, R2)]:
        with pytest.raises(ContractCustomError):  # overlap, replay, gap, wrong previous root
            call_anchor(chain, *args)
        # and sent for real, the transaction reverts and changes nothing
        h, raw = chain.sign_anchor(*args, chain.nonce())
        chain.send_raw(raw)
        assert chain.wait_receipt(h, 10)["status"] == 0
    assert chain.contract_state() == (11, R1, 1)
    # another account, even with a correct batch
    foreign = Chain(anvil.url, DEV_KEYS[1])
    foreign.address = chain.address
    with pytest.raises(ContractCustomError):
        call_anchor(foreign, R2, 11, 20, R1)
    h, raw = foreign.sign_anchor(R2, 11, 20, R1, foreign.nonce())
    foreign.send_raw(raw)
    assert foreign.wait_receipt(h, 10)["status"] == 0
    assert chain.contract_state() == (11, R1, 1)
    # the right account with the right batch is accepted
    call_anchor(chain, R2, 11, 20, R1)


def test_deployment_is_idempotent(store, anvil):
    b1 = deployed(store, anvil)
    addr = b1.chain.address
    nonce = b1.chain.nonce()
    b2 = make_batcher(store, anvil.url)
    assert b2.ensure_contract() == addr
    assert b2.chain.nonce() == nonce  # nothing was sent: no second deployment


def test_a_different_contract_at_the_configured_address_is_an_error(store, anvil, tmp_path):
    from tracer.db import make_engine, upgrade
    from tracer.store import TraceStore

    chain = Chain(anvil.url, DEV_KEYS[0])
    # a contract with other code: returns a constant
    code = "0x600a600c600039600a6000f3602a60005260206000f3"
    tx = {"data": code, "gas": 100_000, "gasPrice": 0, "nonce": chain.nonce(), "chainId": chain.chain_id, "value": 0}
    h, raw = chain._sign(tx)
    chain.send_raw(raw)
    other = chain.wait_receipt(h, 10)["contractAddress"]
    b = make_batcher(store, anvil.url, contract_address=other)
    with pytest.raises(ChainError, match="not the TraceAnchor"):
        b.ensure_contract()
    # an address with no code at all
    b = make_batcher(store, anvil.url, contract_address="0x000000000000000000000000000000000000dEaD")
    with pytest.raises(ChainError, match="no contract"):
        b.ensure_contract()
    # a genuine TraceAnchor owned by another account
    engine = make_engine(f"sqlite:///{tmp_path / 'other.sqlite'}")
    upgrade(engine)
    theirs = make_batcher(TraceStore(engine), anvil.url, key=DEV_KEYS[1])
    their_address = theirs.ensure_contract()
    b = make_batcher(store, anvil.url, contract_address=their_address)
    with pytest.raises(ChainError, match="belongs to"):
        b.ensure_contract()


def test_database_bound_to_its_contract_and_chain(store, anvil):
    b = deployed(store, anvil)
    # a different configured address than the one this database anchors to
    other = make_batcher(store, anvil.url, contract_address="0x000000000000000000000000000000000000bEEF")
    with pytest.raises(ChainError, match="differs"):
        other.ensure_contract()
    store.set_meta("chain_id", "1")
    with pytest.raises(ChainError, match="chain"):
        make_batcher(store, anvil.url).ensure_contract()
    store.set_meta("chain_id", str(b.chain.chain_id))
    with pytest.raises(ChainError, match="expected"):
        Chain(anvil.url, DEV_KEYS[0], chain_id=1).chain_id
