"""docs/tour.md stays true: every file it names exists, and every Python snippet runs, in order, in one session."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOUR = (ROOT / "docs" / "tour.md").read_text(encoding="utf-8")


def test_every_file_the_tour_names_exists():
    paths = set(re.findall(r"(?<![\w/.])(?:minitransfer|kernels|tests)/[\w/]*\w\.py", TOUR.replace("\\_", "_")))
    assert len(paths) >= 10
    assert [p for p in sorted(paths) if not (ROOT / p).is_file()] == []


def test_the_readme_links_the_tour():
    assert "docs/tour.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_snippet_runs(monkeypatch, capsys):
    snippets = re.findall(r"```python\n(.*?)```", TOUR, flags=re.S)
    assert len(snippets) >= 8
    monkeypatch.chdir(ROOT)  # the snippets read the shipped data by its path in the repository
    session: dict = {}
    for i, code in enumerate(snippets):
        exec(compile(code, f"docs/tour.md snippet {i + 1}", "exec"), session)  # noqa: S102 (our own docs)
    assert "(unaccounted)" in capsys.readouterr().out
