"""The results tables in README.md and docs/ are the ones benchmarks/tables.py makes from the
committed records in benchmarks/results/."""

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_tables():
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = load_tables()


@pytest.mark.parametrize("path", tables.documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_tables_equal_the_records(path):
    where = str(path.relative_to(ROOT))
    for block, fresh in tables.blocks(path.read_text(), where):
        assert block["body"] == fresh, (
            f"{where}: table {block['name']} differs from the records "
            "(python benchmarks/tables.py --check shows how; without --check rewrites it)"
        )


def test_every_registered_table_is_used():
    unused = set(tables.TABLES) - tables.names_used(tables.documents())
    assert not unused, f"tables no marker uses: {sorted(unused)}"


def copy_documents(tmp_path: Path, monkeypatch) -> Path:
    """README.md and docs/*.md copied under TMP_PATH, which tables.py then treats as the root."""
    (tmp_path / "docs").mkdir()
    for path in tables.documents():
        shutil.copy(path, tmp_path / path.relative_to(ROOT))
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    return tmp_path / "README.md"


def test_an_altered_block_is_found_and_rewritten(tmp_path, monkeypatch, capsys):
    readme = copy_documents(tmp_path, monkeypatch)
    text = readme.read_text()
    start = text.index("<!-- table: readme-defaults -->")
    altered = text[:start] + text[start:].replace("87.80%", "87.89%", 1)  # the baseline row
    assert altered != text
    readme.write_text(altered)

    assert tables.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "README.md: table readme-defaults differs from the records" in out
    assert "-| baseline, 30 epochs | 87.89%" in out
    assert readme.read_text() == altered  # --check writes nothing

    assert tables.main([]) == 0
    assert readme.read_text() == text
    capsys.readouterr()
    assert tables.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_unknown_name_and_missing_record_are_one_line_errors(tmp_path, monkeypatch, capsys):
    readme = copy_documents(tmp_path, monkeypatch)
    readme.write_text("<!-- table: no-such-table -->\n| a |\n<!-- /table -->\n")
    assert tables.main(["--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown table 'no-such-table'" in err

    readme.write_text("<!-- table: recovery-curve -->\n<!-- /table -->\n")
    monkeypatch.setattr(tables, "RESULTS", tmp_path / "results")
    assert tables.main(["--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing record: benchmarks/results/recovery/gpu/" in err
