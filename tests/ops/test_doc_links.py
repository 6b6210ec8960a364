"""The documentation stays inside the repository: every relative link of the Markdown
pages (README.md, docs/, and the pages they link to) names a file of the repository,
and an anchor names a heading of that page; no page points at a path outside the
repository; docs/design.md, the contract, is in the repository."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_LINK = re.compile(r"""<(?:a|img)\s[^>]*(?:href|src)=["']([^"']+)["']""", re.IGNORECASE)
OUTSIDE_PATH = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-][\w./-]*)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
EXTERNAL = ("http://", "https://", "mailto:")


def pages() -> list[Path]:
    """README.md, docs/*.md and every Markdown page they link to, transitively."""
    todo = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    seen: list[Path] = []
    while todo:
        page = todo.pop(0)
        if page in seen or not page.is_file():
            continue
        seen.append(page)
        for target in links(page):
            path = unquote(target.partition("#")[0])
            if path.endswith(".md") and not target.startswith(EXTERNAL):
                todo.append((page.parent / path).resolve())
    return seen


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))  # code blocks hold no links
    return [m.group(1) for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK) for m in pattern.finditer(text)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -1 -2 for repeats."""
    found: set[str] = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            candidate, n = slug, 0
            while candidate in found:
                n += 1
                candidate = f"{slug}-{n}"
            found.add(candidate)
    return found


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_contract_is_in_the_repository() -> None:
    assert (ROOT / "docs" / "design.md").is_file()
    assert "design.md" in " ".join(links(ROOT / "README.md"))


@pytest.mark.parametrize("page", pages(), ids=name)
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    broken = []
    for target in links(page):
        if target.startswith(EXTERNAL):
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / unquote(path)).resolve() if path else page
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
        elif fragment and resolved.suffix == ".md" and fragment.lower() not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {name(resolved)}")
    assert not broken, f"{name(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", pages(), ids=name)
def test_no_page_names_a_path_outside_the_repository(page: Path) -> None:
    outside = [m.group(1) for m in OUTSIDE_PATH.finditer(page.read_text(encoding="utf-8"))
               if not (page.parent / m.group(1)).resolve().is_relative_to(ROOT)]
    assert not outside, f"{name(page)} names paths outside the repository: {outside}"


def test_the_anchor_check_finds_github_heading_ids(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# llm-router: design and contract\n## What a client sees (contract)\n## Notes\n## Notes\n"
                    "```\n# not a heading\n```\n", encoding="utf-8")
    assert anchors(page) == {"llm-router-design-and-contract", "what-a-client-sees-contract", "notes", "notes-1"}
