"""Generate a Besu QBFT network for the insitu chart: validator keys and genesis.

    python helm/insitu/tools/besu_qbft.py --validators 4 --out build/besu

writes ``genesis.json``, ``besu-values.yaml`` (``besu.genesis`` and
``besu.bootnodes``: pass it to helm with ``-f``) and
``validator-keys.yaml``, a Secret ``<release>-besu-keys`` holding one private
key per validator (``kubectl apply`` it before installing; the chart never
holds keys in values). Gas is free: ``zeroBaseFee`` and a gas price of 0 (the
nodes run with ``--min-gas-price=0``).

QBFT ``extraData`` is ``RLP([32-byte vanity, [validator addresses], [], 0, []])``
(Besu's QBFT genesis format).
"""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path

import rlp
from eth_keys import keys

CHAIN_ID = 1337_2026


def new_key() -> keys.PrivateKey:
    return keys.PrivateKey(secrets.token_bytes(32))


def extra_data(addresses: list[bytes]) -> str:
    vanity = b"\x00" * 32
    return "0x" + rlp.encode([vanity, addresses, [], b"", []]).hex()


def decode_extra_data(extra: str) -> list[str]:
    vanity, validators, votes, round_, seals = rlp.decode(bytes.fromhex(extra.removeprefix("0x")))
    return ["0x" + v.hex() for v in validators]


def genesis(addresses: list[bytes], *, block_period: int = 2, chain_id: int = CHAIN_ID) -> dict:
    return {
        "config": {
            "chainId": chain_id,
            "berlinBlock": 0,
            "londonBlock": 0,
            "zeroBaseFee": True,
            "qbft": {"blockperiodseconds": block_period, "epochlength": 30000, "requesttimeoutseconds": 4},
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": "0x1fffffffffffff",
        "difficulty": "0x1",
        "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
        "coinbase": "0x0000000000000000000000000000000000000000",
        "alloc": {},
        "extraData": extra_data(addresses),
    }


def build(n: int, release: str = "insitu") -> tuple[dict, dict, list[keys.PrivateKey]]:
    if n < 4:
        raise SystemExit("QBFT needs at least 4 validators to tolerate one fault")
    ks = [new_key() for _ in range(n)]
    addrs = [k.public_key.to_canonical_address() for k in ks]
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{release}-besu-keys"},
        "type": "Opaque",
        "stringData": {f"validator-{i}": "0x" + k.to_bytes().hex() for i, k in enumerate(ks)},
    }
    return genesis(addrs), secret, ks


def bootnodes(ks: list[keys.PrivateKey], release: str, port: int = 30303) -> list[str]:
    """enode URLs of the validators (public key without the 0x04 prefix)."""
    return [f"enode://{k.public_key.to_bytes().hex()}@{release}-besu-{i}:{port}" for i, k in enumerate(ks)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--release", default="insitu")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    g, secret, _ = build(a.validators, a.release)  # _: the private keys
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "genesis.json").write_text(json.dumps(g, indent=2) + "\n")
    (a.out / "validator-keys.yaml").write_text(json.dumps(secret, indent=2) + "\n")
    (a.out / "validator-keys.yaml").chmod(0o600)
    values = {"besu": {"genesis": json.dumps(g, indent=2), "bootnodes": bootnodes(_, a.release)}}
    (a.out / "besu-values.yaml").write_text(json.dumps(values, indent=2) + "\n")
    print(f"wrote {a.out}/genesis.json and {a.out}/validator-keys.yaml ({a.validators} validators)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
