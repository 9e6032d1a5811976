"""Published datasets as citable objects: a public page per published version (no login) with the
metadata, the Merkle root, the DOI and citations (DataCite JSON, BibTeX, RO-Crate); the DOI minted
through the registry client at publication, against a local stand-in of the DataCite REST API on
loopback (DataCite cannot be reached from here). The governance stack's real hub, tracer and service.
"""
from __future__ import annotations

import json
import re
import time
from contextlib import closing

import httpx
import pytest

from fixtures.datacite_standin import DataCiteStandIn

COOKIE = "insitu-dataset-service-session"


@pytest.fixture
def st(governance_stack):
    return governance_stack


@pytest.fixture
def registry(st):
    from dataset_service.publication.doi import DataCiteRegistry

    with DataCiteStandIn() as standin:
        before = st.app.state.doi_registry
        st.app.state.doi_registry = DataCiteRegistry(standin.url, standin.repository, standin.password,
                                                     standin.prefix, timeout=10)
        try:
            yield standin
        finally:
            st.app.state.doi_registry = before


def manager(st) -> httpx.Client:
    cookies = {COOKIE: st.app.state.hub_auth.session_value(st.token("dora"))}
    return httpx.Client(base_url=st.base, cookies=cookies, timeout=30, follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)


def publish(c: httpx.Client, ds: str) -> httpx.Response:
    tok = csrf_of(c.get("/manage").text)
    return c.post(f"/manage/datasets/{ds}/state", data={"csrf_token": tok, "state": "published"})


def test_publishing_mints_a_doi_and_the_public_page_cites_it(st, registry):
    v1 = st.add_dataset("Citable lung CT", license="CC-BY-4.0", tags=["radiomics"])
    st.set_state(v1, "published")
    v2 = st.add_dataset("Citable lung CT", version=2, previous_id=v1, license="CC-BY-4.0",
                        description="Pre-treatment CT {v2} & outcomes", tags=["radiomics", "nsclc"])
    draft = st.add_dataset("Not public yet", state="draft")
    anon = httpx.Client(base_url=st.base, timeout=30)  # no login at all
    assert anon.get(f"/public/datasets/{v2}").status_code == 404  # released, not yet published
    with closing(manager(st)) as c:
        r = publish(c, v2)
        assert r.status_code == 303, r.text
    doi = f"10.5072/{v2}".lower()
    held = registry.dois[doi]
    assert held["state"] == "findable" and held["titles"] == [{"title": "Citable lung CT"}]
    assert held["url"].endswith(f"/services/dataset-service/public/datasets/{v2}")
    merkle = st.sql("select merkle_root from datasets where id = :i", i=v2)[0][0]
    assert {"alternateIdentifier": merkle, "alternateIdentifierType": "insitu manifest Merkle root (SHA-256)"} \
        in held["alternateIdentifiers"]
    assert held["relatedIdentifiers"][0]["relationType"] == "IsNewVersionOf"
    assert held["relatedIdentifiers"][0]["relatedIdentifier"].endswith(f"/public/datasets/{v1}")

    with closing(anon):
        page = anon.get(f"/public/datasets/{v2}")
        assert page.status_code == 200 and f"https://doi.org/{doi}" in page.text
        assert merkle in page.text and "Pre-treatment CT {v2} &amp; outcomes" in page.text
        assert f"/public/datasets/{v1}" in page.text  # the previous version
        bib = anon.get(f"/public/datasets/{v2}/citation.bib")
        assert bib.status_code == 200 and bib.headers["content-type"].startswith("application/x-bibtex")
        assert re.match(r"@misc\{CitableLungCt\d{4}v2,", bib.text) and f"doi = {{{doi}}}" in bib.text
        dc = anon.get(f"/public/datasets/{v2}/datacite.json").json()["data"]["attributes"]
        assert dc["doi"] == doi and dc["publisher"] == {"name": "insitu research data platform"}
        assert dc["rightsList"][0]["rightsIdentifier"] == "CC-BY-4.0"
        crate = anon.get(f"/public/datasets/{v2}/ro-crate-metadata.json").json()
        assert crate["@context"] == "https://w3id.org/ro/crate/1.1/context"
        root = next(x for x in crate["@graph"] if x["@type"] == "Dataset")
        assert root["@id"] == f"https://doi.org/{doi}" and root["license"] == {"@id": "https://spdx.org/licenses/CC-BY-4.0"}
        assert root["additionalProperty"][0]["value"] == merkle
        meta = next(x for x in crate["@graph"] if x["@id"] == "ro-crate-metadata.json")
        assert meta["about"] == {"@id": root["@id"]}
        for path in (f"/public/datasets/{draft}", "/public/datasets/ds-none"):
            r = anon.get(path)
            assert r.status_code == 404 and "There is no published dataset" in r.text
        for suffix in ("datacite.json", "citation.bib", "ro-crate-metadata.json"):
            r = anon.get(f"/public/datasets/{draft}/{suffix}")
            assert r.status_code == 404 and "no published dataset" in r.json()["detail"]

    # the DOI is recorded and traced; the dataset page shows it to the manager
    deadline = time.monotonic() + 60
    while True:
        found = [t["trace"] for t in st.tracer.traces(st.token("audrey"), action="UPDATE_DATASET", dataset=v2)]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert found and found[0]["details"]["doi"] == doi
    with closing(manager(st)) as c:
        assert f"https://doi.org/{doi}" in c.get(f"/datasets/{v2}").text


def test_a_registry_that_refuses_leaves_the_dataset_published_and_the_doi_can_be_registered_again(st, registry):
    from dataset_service.publication.doi import DataCiteRegistry

    ds = st.add_dataset("Citable brain MR")
    good = st.app.state.doi_registry
    st.app.state.doi_registry = DataCiteRegistry(registry.url, registry.repository, "wrong-password", "10.5072")
    with closing(manager(st)) as c:
        r = publish(c, ds)
        assert r.status_code == 502 and "Published, but without a DOI" in r.text and "Bad credentials" in r.text
        assert st.sql("select state from datasets where id = :i", i=ds)[0][0] == "published"
        assert not registry.dois.get(f"10.5072/{ds}".lower())
        page = c.get(f"/datasets/{ds}").text
        assert 'id="register-doi"' in page
        st.app.state.doi_registry = good
        r = c.post(f"/manage/datasets/{ds}/doi", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303 and r.headers["location"].endswith(f"/public/datasets/{ds}?notice=doi")
        assert registry.dois[f"10.5072/{ds}".lower()]["state"] == "findable"
        r = c.post(f"/manage/datasets/{ds}/doi", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303 and len([d for d in registry.dois if d.endswith(ds.lower())]) == 1
        released = st.add_dataset("Only released")
        r = c.post(f"/manage/datasets/{released}/doi", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 404 and "only published datasets get a DOI" in r.text


def test_bibtex_escapes_what_latex_would_read():
    from dataset_service.publication.citation import bibtex

    r = {"name": "Lung {CT} 100% & more_x", "publisher": "insitu", "year": 2026, "version": 1,
         "url": "https://x.example/p", "doi": None, "license": "", "merkle_root": "ab"}
    out = bibtex(r)
    assert r"title = {Lung \{CT\} 100\% \& more\_x}" in out
    assert out.count("{") - out.count(r"\{") == out.count("}") - out.count(r"\}")


def test_a_doi_registered_while_the_tracer_is_down_is_said_and_can_be_recorded_again(st, registry):
    """The registry registers the DOI, the tracer does not take its trace: the page says it was not
    recorded (502, not a 500), no DOI is shown as recorded, and registering again once the tracer is back
    records it (the registry keeps one DOI)."""
    from fixtures.jupyterhub import free_port

    ds = st.add_dataset("Citable pelvis MR")
    good_registry, good_settings = st.app.state.doi_registry, st.app.state.settings
    st.app.state.doi_registry = None  # published without a DOI first
    with closing(manager(st)) as c:
        assert publish(c, ds).status_code == 303
        st.app.state.doi_registry = good_registry
        page = c.get(f"/datasets/{ds}").text
        st.app.state.settings = good_settings.model_copy(update={"tracer_url": f"http://127.0.0.1:{free_port()}"})
        try:
            r = c.post(f"/manage/datasets/{ds}/doi", data={"csrf_token": csrf_of(page)})
        finally:
            st.app.state.settings = good_settings
        assert r.status_code == 502 and "could not be recorded" in r.text, r.text[:300]
        assert registry.dois.get(f"10.5072/{ds}".lower())  # registered at the registry ...
        assert not st.sql("select 1 from dataset_events where dataset_id = :i and action = 'doi'", i=ds)  # ... not here
        r = c.post(f"/manage/datasets/{ds}/doi", data={"csrf_token": csrf_of(page)})
        assert r.status_code == 303
        assert st.sql("select count(*) from dataset_events where dataset_id = :i and action = 'doi'", i=ds)[0][0] == 1
