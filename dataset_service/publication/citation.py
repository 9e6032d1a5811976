"""A published dataset as a citable object: DataCite JSON, BibTeX and an RO-Crate, from one record.

``record`` is a plain dict (``public_record``): id, name, version, description, licence, tags, contact,
merkle_root, published (date), url, doi (or None), previous_url (or None), publisher. Pure functions.
"""
from __future__ import annotations

import datetime as dt
import re

ROCRATE_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
ROCRATE_PROFILE = "https://w3id.org/ro/crate/1.1"
SPDX = "https://spdx.org/licenses/"
MERKLE_TYPE = "insitu manifest Merkle root (SHA-256)"


def public_record(ds, *, url: str, publisher: str, published: dt.datetime | None, doi: str | None,
                  previous_url: str | None) -> dict:
    when = published or ds.created_at
    return {"id": ds.id, "name": ds.name, "version": ds.version, "description": ds.description or "",
            "license": ds.license or "", "tags": list(ds.tags or []), "contact": ds.contact or "",
            "merkle_root": ds.merkle_root or "", "n_studies": ds.n_studies, "published": when.date().isoformat(),
            "year": when.year, "url": url, "doi": doi, "previous_url": previous_url, "publisher": publisher}


def _license_url(lic: str) -> str | None:
    return SPDX + lic if re.fullmatch(r"[A-Za-z0-9.+-]{2,64}", lic or "") else None


def datacite(r: dict) -> dict:
    """The DataCite REST API's JSON:API document (``POST /dois``, schema 4.x attributes)."""
    attrs = {
        "titles": [{"title": r["name"]}],
        "creators": [{"name": r["publisher"], "nameType": "Organizational"}],
        "publisher": {"name": r["publisher"]},
        "publicationYear": r["year"],
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Imaging dataset"},
        "url": r["url"],
        "version": str(r["version"]),
        "dates": [{"date": r["published"], "dateType": "Issued"}],
        "subjects": [{"subject": t} for t in r["tags"]],
        "descriptions": [{"description": r["description"], "descriptionType": "Abstract"}] if r["description"] else [],
        "rightsList": ([{"rights": r["license"], **({"rightsUri": _license_url(r["license"]),
                                                      "rightsIdentifier": r["license"],
                                                      "rightsIdentifierScheme": "SPDX"}
                                                     if _license_url(r["license"]) else {})}]
                       if r["license"] else []),
        "alternateIdentifiers": [{"alternateIdentifier": r["merkle_root"], "alternateIdentifierType": MERKLE_TYPE}]
        if r["merkle_root"] else [],
        "relatedIdentifiers": [{"relatedIdentifier": r["previous_url"], "relatedIdentifierType": "URL",
                                "relationType": "IsNewVersionOf"}] if r["previous_url"] else [],
    }
    if r["doi"]:
        attrs["doi"] = r["doi"]
    return {"data": {"type": "dois", "attributes": attrs}}


def _bib(text: str) -> str:
    """A BibTeX field value: braces balanced away, LaTeX specials escaped."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    for ch, rep in (("\\", r"\textbackslash{}"), ("{", r"\{"), ("}", r"\}"), ("&", r"\&"), ("%", r"\%"),
                    ("$", r"\$"), ("#", r"\#"), ("_", r"\_"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        text = text.replace(ch, rep)
    return text


def bibtex(r: dict) -> str:
    key = re.sub(r"[^A-Za-z0-9]+", "", r["name"].title())[:40] or "dataset"
    fields = [("title", r["name"]), ("author", "{" + _bib(r["publisher"]) + "}"), ("publisher", r["publisher"]),
              ("year", str(r["year"])), ("version", str(r["version"])), ("url", r["url"])]
    if r["doi"]:
        fields.append(("doi", r["doi"]))
    if r["license"]:
        fields.append(("note", f"Licence: {r['license']}. Manifest Merkle root: {r['merkle_root']}"))
    body = ",\n".join(f"  {k} = {{{v if k == 'author' else _bib(v)}}}" for k, v in fields)
    return f"@misc{{{key}{r['year']}v{r['version']},\n{body}\n}}\n"


def ro_crate(r: dict) -> dict:
    """``ro-crate-metadata.json`` of the dataset (metadata only: the data itself never leaves)."""
    root_id = f"https://doi.org/{r['doi']}" if r["doi"] else r["url"]
    root = {
        "@id": root_id, "@type": "Dataset", "name": r["name"], "description": r["description"],
        "version": str(r["version"]), "datePublished": r["published"], "url": r["url"],
        "keywords": r["tags"], "publisher": {"@id": "#publisher"}, "creator": {"@id": "#publisher"},
        "identifier": [x for x in (f"https://doi.org/{r['doi']}" if r["doi"] else None, r["url"]) if x],
        "additionalProperty": [{"@type": "PropertyValue", "name": MERKLE_TYPE, "value": r["merkle_root"]}],
        "conditionsOfAccess": "Analysed in place on the platform after approval by its data access committee; "
                              "the files are not downloadable.",
    }
    if r["license"]:
        root["license"] = {"@id": _license_url(r["license"]) or r["license"]}
    if r["previous_url"]:
        root["isBasedOn"] = {"@id": r["previous_url"]}
    if r["contact"]:
        root["contactPoint"] = {"@id": "#contact"}
    graph = [{"@id": "ro-crate-metadata.json", "@type": "CreativeWork", "conformsTo": {"@id": ROCRATE_PROFILE},
              "about": {"@id": root_id}}, root,
             {"@id": "#publisher", "@type": "Organization", "name": r["publisher"]}]
    if r["contact"]:
        graph.append({"@id": "#contact", "@type": "ContactPoint", "email": r["contact"], "contactType": "data"})
    return {"@context": ROCRATE_CONTEXT, "@graph": graph}
