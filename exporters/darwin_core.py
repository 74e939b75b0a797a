"""Darwin Core Archive for GBIF: occurrence.txt, meta.xml and eml.xml in one zip."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from catalog import __version__
from catalog.store import Store
from catalog.vocabulary import FINPRINT
from exporters.cells import inert
from exporters.selection import ExportFilter, sighting_rows, taken_at_iso
from exporters.tabular import atomic_target

DWC = "http://rs.tdwg.org/dwc/terms/"
LICENCE_TEXT = {
    "CC0-1.0": (
        "Creative Commons Zero v1.0 Universal",
        "http://creativecommons.org/publicdomain/zero/1.0/legalcode",
    ),
    "CC-BY-4.0": (
        "Creative Commons Attribution (CC-BY) 4.0",
        "http://creativecommons.org/licenses/by/4.0/legalcode",
    ),
    "CC-BY-NC-4.0": (
        "Creative Commons Attribution Non Commercial (CC-BY-NC) 4.0",
        "http://creativecommons.org/licenses/by-nc/4.0/legalcode",
    ),
}


@dataclass(frozen=True)
class DatasetMetadata:
    """What eml.xml says of the dataset (settings dataset_* and scientific_name)."""

    scientific_name: str = "Symphodus melops"
    publisher: str = "finprint catalogue"
    contact_email: str | None = None
    licence: str = "CC-BY-4.0"
    language: str = "en"
    # Who photographed (setting recorded_by: a survey team or a person), for recordedBy.
    recorded_by: str | None = None


# What a published archive must not take from finprint's defaults without saying so.
_PUBLISHED_SETTINGS = ("scientific_name", "dataset_licence", "dataset_contact_email")


def unset_metadata(dataset: DatasetMetadata, given: set[str]) -> str | None:
    """What the archive would publish that nobody set (`given`: the settings a flag, variable, file
    or the catalogue gave), as a warning naming the settings to give; None when all were given."""
    missing = [name for name in _PUBLISHED_SETTINGS if name not in given]
    if not missing:
        return None
    taken = {
        "scientific_name": f"the species {dataset.scientific_name!r}",
        "dataset_licence": f"the licence {dataset.licence}",
        "dataset_contact_email": "no contact",
    }
    return (
        f"this archive publishes finprint's defaults: {', '.join(taken[name] for name in missing)}. "
        f"Set {', '.join(missing)} in finprint.toml (or FINPRINT_* variables) before giving it to GBIF."
    )


# The occurrence columns, in file order; each is a Darwin Core term.
OCCURRENCE_TERMS = (
    "occurrenceID",
    "basisOfRecord",
    "occurrenceStatus",
    "eventID",
    "eventDate",
    "scientificName",
    "kingdom",
    "organismID",
    "organismName",
    "decimalLatitude",
    "decimalLongitude",
    "geodeticDatum",
    "locality",
    "associatedMedia",
    "identificationVerificationStatus",
    "identifiedBy",
    "recordedBy",
    "occurrenceRemarks",
)


def _clean(value: Any) -> str:
    """Tabs and line breaks would break the tab-separated file: they become spaces."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return " ".join(str(value).split())


def occurrence(row: dict[str, Any], scientific_name: str, recorded_by: str | None = None) -> dict[str, str]:
    """One sighting as a Darwin Core occurrence."""
    software = f"finprint {__version__} (model {row['model_version']})"
    person = row.get("decided_by")
    # With the camera's UTC offset when it wrote one: GBIF then places the event in time exactly.
    event = taken_at_iso(row, "seconds") or row["survey_date"]
    remarks = [f"{row['side']} flank" if row["side"] else "", f"{row['crop']} crop" if row["crop"] else ""]
    if row["distance"] is not None:
        remarks.append(f"embedding distance {row['distance']:.3f}")
    if row["animal_id"] != row["individual_id"]:
        remarks.append(f"catalogue entry {row['individual_id']}")
    path = str(row["path"] or "")
    values = {
        "occurrenceID": f"finprint:{row['photo_id']}",
        "occurrenceStatus": "present",
        # One survey: a site on a date (GBIF groups occurrences of one sampling event by it).
        "eventID": f"{row['site'] or 'unknown site'}/{row['survey_date'] or 'undated'}",
        "kingdom": "Animalia",
        # A person's confirmation makes it a human observation; finprint's own match does not.
        "basisOfRecord": "HumanObservation" if row["status"] == "confirmed" else "MachineObservation",
        "eventDate": event,
        "scientificName": scientific_name,
        # One organism per animal: a fish's linked flank entries are one organism.
        "organismID": row["animal_id"],
        "organismName": row["individual_name"],
        "decimalLatitude": row["latitude"],
        "decimalLongitude": row["longitude"],
        "geodeticDatum": "WGS84" if row["latitude"] is not None else None,
        "locality": row["site"],
        # A URL others can open, or nothing: a path on this machine means nothing to GBIF.
        "associatedMedia": path if path.startswith(("http://", "https://")) else None,
        "identificationVerificationStatus": row["status"],
        # The person whose decision stands, else the software and model that matched.
        "identifiedBy": person if person and person != FINPRINT else software,
        "recordedBy": recorded_by,
        "occurrenceRemarks": "; ".join(r for r in remarks if r),
    }
    return {term: _clean(values[term]) for term in OCCURRENCE_TERMS}


def meta_xml() -> str:
    archive = ElementTree.Element("archive", {"xmlns": "http://rs.tdwg.org/dwc/text/", "metadata": "eml.xml"})
    core = ElementTree.SubElement(
        archive,
        "core",
        {
            "encoding": "UTF-8",
            "fieldsTerminatedBy": "\\t",
            "linesTerminatedBy": "\\n",
            "fieldsEnclosedBy": "",
            "ignoreHeaderLines": "1",
            "rowType": DWC + "Occurrence",
        },
    )
    ElementTree.SubElement(ElementTree.SubElement(core, "files"), "location").text = "occurrence.txt"
    ElementTree.SubElement(core, "id", {"index": "0"})
    for index, term in enumerate(OCCURRENCE_TERMS):
        ElementTree.SubElement(core, "field", {"index": str(index), "term": DWC + term})
    ElementTree.indent(archive)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(archive, encoding="unicode") + "\n"
    )


def _party(parent: ElementTree.Element, role: str, dataset: DatasetMetadata) -> None:
    """The publisher (and its e-mail, when given) in one of EML's roles."""
    party = ElementTree.SubElement(parent, role)
    ElementTree.SubElement(party, "organizationName").text = dataset.publisher
    if dataset.contact_email:
        ElementTree.SubElement(party, "electronicMailAddress").text = dataset.contact_email


def eml_xml(dataset: DatasetMetadata, n_occurrences: int, published: date | None = None) -> str:
    """EML 2.1.1 with what GBIF's validator requires: title, creator, contact, publication date,
    language, abstract and one of GBIF's licences."""
    eml = ElementTree.Element(
        "eml:eml",
        {
            "xmlns:eml": "eml://ecoinformatics.org/eml-2.1.1",
            "packageId": f"finprint-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}",
            "system": "finprint",
            "xml:lang": dataset.language,
        },
    )
    root = ElementTree.SubElement(eml, "dataset")
    ElementTree.SubElement(root, "title").text = f"finprint sightings of {dataset.scientific_name}"
    _party(root, "creator", dataset)
    _party(root, "metadataProvider", dataset)
    ElementTree.SubElement(root, "pubDate").text = (published or date.today()).isoformat()
    ElementTree.SubElement(root, "language").text = dataset.language
    abstract = ElementTree.SubElement(ElementTree.SubElement(root, "abstract"), "para")
    abstract.text = (
        f"{n_occurrences} photo sightings of individually identified {dataset.scientific_name}, "
        f"matched by skin pattern with finprint {__version__}."
    )
    name, url = LICENCE_TEXT[dataset.licence]
    rights = ElementTree.SubElement(ElementTree.SubElement(root, "intellectualRights"), "para")
    rights.text = "This work is licensed under a "
    link = ElementTree.SubElement(ElementTree.SubElement(rights, "ulink", {"url": url}), "citetitle")
    link.text = name
    rights[0].tail = "."
    _party(root, "contact", dataset)  # EML orders contact after the rights
    ElementTree.indent(eml)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(eml, encoding="unicode") + "\n"


def export_darwin_core(
    store: Store,
    out_path: Path,
    dataset: DatasetMetadata,
    selection: ExportFilter | None = None,
    spreadsheet_safe: bool = False,
) -> int:
    """Write a Darwin Core Archive zip; returns the number of occurrences (`spreadsheet_safe`: as
    export_csv)."""
    rows = [
        occurrence(r, dataset.scientific_name, dataset.recorded_by)
        for r in sighting_rows(store, selection or ExportFilter())
    ]
    if spreadsheet_safe:
        rows = [{term: inert(value) for term, value in row.items()} for row in rows]
    lines = ["\t".join(OCCURRENCE_TERMS)] + ["\t".join(r[t] for t in OCCURRENCE_TERMS) for r in rows]
    with (
        atomic_target(out_path) as partial,
        zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        archive.writestr("occurrence.txt", "\n".join(lines) + "\n")
        archive.writestr("meta.xml", meta_xml())
        archive.writestr("eml.xml", eml_xml(dataset, len(rows)))
    return len(rows)
