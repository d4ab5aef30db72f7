"""The docs stay true: generated pages are fresh, the README is short, holds the quick start and links to pages that
exist. (`mkdocs build --strict`, in .ci/run, checks the site's own links, anchors and included files.)"""

import re

import pytest

from harness.config.tables import generated, generated_text
from tests.conftest import ROOT

README = ROOT / "README.md"
QUICK_START = (
    "bash scripts/setup.sh && .venv/bin/python -m harness.run",
    "bash scripts/setup.sh --test && .venv/bin/python -m pytest",
)


@pytest.mark.parametrize("page", list(generated()), ids=lambda path: path.name)
def test_generated_page_is_fresh(page):
    # After changing conf/, harness/config/groups.py or harness/config/metrics.py:
    # `python -m harness.config.tables --write`.
    assert generated_text(page.read_text()) == generated()[page]


def test_readme_is_short_and_holds_the_quick_start():
    text = README.read_text()
    assert len(text.encode()) <= 12 * 1024
    assert all(command in text.splitlines() for command in QUICK_START)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "bash scripts/setup.sh --test" in ci and ".venv/bin/python -m pytest" in ci  # CI runs the second one
    assert any(line.startswith(".venv/bin/mkdocs build --strict") for line in ci)


def test_readme_links_to_pages_that_exist():
    links = re.findall(r"\]\(((?!https?://)[^)#]+)(?:#[^)]*)?\)", README.read_text())
    assert any(link.startswith("docs/") for link in links)
    assert [link for link in links if not (ROOT / link).exists()] == []
