import hashlib

import pytest

from insitu.manifest import (build_manifest, leaf, merkle_proof, merkle_root, study_digest,
                                      verify_proof)


def h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def test_study_digest_rule_by_hand():
    files = [("s2/0001.dcm", 10, "b" * 64), ("s1/0001.dcm", 5, "a" * 64)]
    text = f"s1/0001.dcm\t5\t{'a' * 64}\ns2/0001.dcm\t10\t{'b' * 64}\n"
    assert study_digest(files) == hashlib.sha256(text.encode()).hexdigest()
    assert study_digest(reversed(files)) == study_digest(files)
    assert study_digest([("s1/0001.dcm", 6, "a" * 64), files[0]]) != study_digest(files)


def test_merkle_root_by_hand():
    d = ["1" * 64, "2" * 64, "3" * 64]
    ids = ["p/a", "p/b", "q/c"]
    l = [h(b"\x00" + i.encode() + b"\n" + bytes.fromhex(x)) for i, x in zip(ids, d)]
    assert leaf(ids[0], d[0]) == l[0]
    assert merkle_root([(ids[0], d[0])]) == l[0].hex()
    expected = h(b"\x01" + h(b"\x01" + l[0] + l[1]) + l[2]).hex()  # odd node carried up
    assert merkle_root(list(zip(ids, d))) == expected
    assert merkle_root(list(zip(reversed(ids), reversed(d)))) == expected
    assert merkle_root([(ids[0], d[1]), (ids[1], d[0]), (ids[2], d[2])]) != expected
    with pytest.raises(ValueError):
        merkle_root([])


@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
def test_proofs(n):
    studies = [(f"s{i:02d}/x", hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]
    root = merkle_root(studies)
    for sid, dg in studies:
        proof = merkle_proof(studies, sid)
        assert verify_proof(sid, dg, proof, root)
        assert not verify_proof(sid, "0" * 64, proof, root)


def test_build_manifest_shape():
    m = build_manifest(dataset_id="ds-1", name="n", version=2, lake_mount_path="/mnt/datalake", studies=[
        {"subject": "s1", "study": "st", "series": [
            {"series": "se", "modality": "CT", "body_part": "CHEST", "files": [("se/0001.dcm", 3, "c" * 64)]}]}])
    assert m["format"] == "insitu-manifest/1"
    st = m["studies"][0]
    assert st["series"][0]["files"] == [{"path": "s1/st/se/0001.dcm", "size": 3, "sha256": "c" * 64}]
    assert st["digest"] == study_digest([("se/0001.dcm", 3, "c" * 64)])
    assert m["merkle_root"] == merkle_root([("s1/st", st["digest"])])
    assert (m["study_count"], m["file_count"], m["total_size"]) == (1, 1, 3)
