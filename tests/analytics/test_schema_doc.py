"""docs/store-schema.md is generated from analytics/schema/ and kept in step with it."""
from __future__ import annotations

from analytics import schema, schema_doc


def test_the_committed_schema_page_is_what_the_schema_renders():
    committed = schema_doc.DOC_PATH.read_text(encoding="utf-8") if schema_doc.DOC_PATH.exists() else ""
    assert committed == schema_doc.render(), (
        "docs/store-schema.md is out of date with analytics/schema/: run `python -m analytics.schema_doc`")


def test_the_page_names_every_view_and_column():
    page = schema_doc.render()
    for v in schema.VIEWS.values():
        assert f"### `{v.name}`" in page
        assert all(f"| `{c.name}` | {c.type} |" in page for c in v.columns), v.name


def test_main_writes_the_page_where_asked(tmp_path, capsys):
    out = tmp_path / "schema.md"
    assert schema_doc.main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == schema_doc.render()
    assert str(out) in capsys.readouterr().out
