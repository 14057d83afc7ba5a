"""The documentation says what the code does: tables generated from the catalog are current."""

from __future__ import annotations

from pathlib import Path

from vitpose_plus.modeling.catalog import checkpoint_table_markdown, plus_results_table_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_conversion_tables_are_generated_from_the_catalog():
    text = (DOCS / "conversion.md").read_text()
    assert checkpoint_table_markdown() in text
    assert plus_results_table_markdown() in text
