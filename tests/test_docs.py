"""Code comments cite docs/ by section anchor: every cited anchor must exist in the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT

CITATION = re.compile(r"docs/([A-Z]+\.md)#([a-z0-9-]+)")
LOCAL_LINK = re.compile(r"\]\((?:([A-Z]+\.md))?#([a-z0-9-]+)\)")
SOURCES = ("core", "tui", "tests", "bench")


def anchors(doc: Path) -> set[str]:
    """GitHub's heading slugs: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in doc.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return out


def citations() -> list[tuple[str, str, str]]:
    found = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for doc, anchor in CITATION.findall(path.read_text()):
                found.append((str(path.relative_to(ROOT)), doc, anchor))
    return found


def test_code_citations_resolve() -> None:
    cited = citations()
    assert len(cited) >= 10, "the protocol's code cites docs/ARCHITECTURE.md"
    missing = [c for c in cited if c[2] not in anchors(ROOT / "docs" / c[1])]
    assert not missing, f"cited anchors that no heading produces: {missing}"


def test_links_between_docs_resolve() -> None:
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target, anchor in LOCAL_LINK.findall(doc.read_text()):
            assert anchor in anchors(doc.parent / (target or doc.name)), f"{doc.name}: {target}#{anchor}"


def test_no_reference_to_a_document_outside_the_repository() -> None:
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != "test_docs.py":
                assert not re.search(r"DESIGN (section )?\d", path.read_text()), path


def test_negative_control_a_renamed_heading_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "ARCHITECTURE.md"
    doc.write_text("# chute\n\n## Intent and ack\n")
    assert "intent-and-ack" in anchors(doc)
    doc.write_text("# chute\n\n## Intent, then ack\n")
    assert "intent-and-ack" not in anchors(doc)
