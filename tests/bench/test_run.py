"""The plumbing of `make bench` (bench/run.py) with fake steps, no measurement: each row is in
results.json as soon as its step ends, a crashing step is a failed row between the others, a
section whose module has not landed reports "not available", and the table in
docs/performance.md is the one results.json gives."""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bench import run
from bench.run import Results, Step, execute


def _row(figure: str, *, met: bool | None = True) -> dict[str, Any]:
    ours = {"median": 1.0, "min": 1.0, "max": 1.0, "unit": "ms", "samples": 1}
    return {"figure": figure, "ours": ours, "baseline": ours, "ratio": 1.0, "target": "<= 1.25x", "met": met}


def _figures(path: Path) -> list[str]:
    return [row["figure"] for row in json.loads(path.read_text())["rows"]]


@pytest.fixture
def results(tmp_path: Path) -> Results:
    return Results(tmp_path / "results.json", ["lambda", "size"])


def test_a_failing_step_is_a_failed_row_and_the_others_are_kept(results: Results) -> None:
    def boom() -> object:
        raise RuntimeError("first line\nthe database did not start")

    failed = execute(
        [
            Step("lambda", "before", lambda: _row("before")),
            Step("lambda", "the crashing figure", boom),
            Step("size", "after", lambda: [_row("after 1"), _row("after 2", met=False)]),
        ],
        results,
    )

    assert failed == ["the crashing figure"]
    rows = json.loads(results.path.read_text())["rows"]
    assert [row["figure"] for row in rows] == ["before", "the crashing figure", "after 1", "after 2"]
    crashed = rows[1]
    assert crashed["met"] is False
    assert crashed["error"] == "the database did not start"
    assert "RuntimeError" in crashed["traceback"]
    assert [row["section"] for row in rows] == ["lambda", "lambda", "size", "size"]
    table = results.path.with_suffix(".md").read_text()
    assert "| the crashing figure | failed: the database did not start |" in table
    assert "FAILED" in table
    assert not [p for p in results.path.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_each_row_is_written_as_soon_as_its_step_ends(results: Results) -> None:
    seen: list[list[str]] = []

    def look() -> object:
        seen.append(_figures(results.path))
        return _row("second")

    execute([Step("lambda", "first", lambda: _row("first")), Step("lambda", "second", look)], results)

    assert seen == [["first"]]
    assert _figures(results.path) == ["first", "second"]


def test_an_interrupted_run_keeps_what_it_measured(results: Results) -> None:
    def interrupted() -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(
            [Step("lambda", "first", lambda: _row("first")), Step("lambda", "second", interrupted)], results
        )

    assert _figures(results.path) == ["first"]


def test_a_step_returning_something_else_than_rows_is_a_failed_row(results: Results) -> None:
    assert execute([Step("lambda", "odd", lambda: 42)], results) == ["odd"]
    (row,) = json.loads(results.path.read_text())["rows"]
    assert row["error"] == "TypeError: a step returned int, not a row or a list of rows"


def test_a_section_whose_module_has_not_landed_reports_not_available(results: Results) -> None:
    def missing() -> object:
        return run.optional("no_such_bench_module", "run")()

    step = Step("lambda", "missing section", missing)
    assert execute([step], results) == ["missing section"]
    (row,) = json.loads(results.path.read_text())["rows"]
    assert row["error"] == "not available: bench/no_such_bench_module.py is not in this checkout"


def test_a_module_without_the_function_reports_not_available() -> None:
    with pytest.raises(run.NotAvailable, match="has no nothing_here"):
        run.optional("lambda_bench", "nothing_here")


def test_every_section_has_steps_and_optional_sections_are_imported_lazily(tmp_path: Path) -> None:
    shared = run.Shared(tmp_path, quick=True)
    steps = run.plan(shared, list(run.SECTIONS), skip_tests=False)
    assert {step.section for step in steps} == set(run.SECTIONS)
    assert "make test (pytest, whole suite)" not in [step.name for step in steps]  # not in --quick
    full = run.plan(run.Shared(tmp_path, quick=False), ["synth"], skip_tests=False)
    assert [step.name for step in full][-1] == "make test (pytest, whole suite)"


def test_only_some_sections_keeps_the_other_sections_rows(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    first = Results(path, ["lambda", "size"])
    execute([Step("lambda", "cold", lambda: _row("cold")), Step("size", "zip", lambda: _row("zip"))], first)

    again = Results(path, ["size"], quick=True)
    execute([Step("size", "zip, again", lambda: _row("zip, again"))], again)

    document = json.loads(path.read_text())
    assert [row["figure"] for row in document["rows"]] == ["cold", "zip, again"]
    assert document["sections"]["lambda"]["quick"] is False
    assert document["sections"]["size"]["quick"] is True


def test_main_exits_1_when_a_step_crashed_and_0_when_a_target_is_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_plan(shared: run.Shared, sections: list[str], *, skip_tests: bool) -> list[Step]:
        return [Step("size", name, partial(_row, name, met=False)) for name in sections]

    monkeypatch.setattr(run, "plan", fake_plan)
    assert run.main(["--only", "size", "--out", str(tmp_path / "r.json")]) == 0

    def crashing_plan(shared: run.Shared, sections: list[str], *, skip_tests: bool) -> list[Step]:
        return [*fake_plan(shared, sections, skip_tests=skip_tests), Step("size", "crash", lambda: 1 / 0)]

    monkeypatch.setattr(run, "plan", crashing_plan)
    assert run.main(["--only", "size", "--out", str(tmp_path / "r.json")]) == 1
    assert _figures(tmp_path / "r.json") == ["size", "crash"]


def test_the_table_is_rewritten_between_its_markers(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"intro\n\n{run.TABLE_START}\nold table\n{run.TABLE_END}\n\nafter\n")
    document = {
        "machine": {"date": "2026-12-03T00:00:00+00:00"},
        "rows": [{**_row("cold"), "section": "lambda"}],
    }

    text = run.rewrite_doc(doc, document)

    assert text.startswith("intro\n\n" + run.TABLE_START)
    assert text.endswith(run.TABLE_END + "\n\nafter\n")
    assert "old table" not in text
    assert (
        "| cold | 1.00 ms [1.00..1.00] | 1.00 ms [1.00..1.00] | 1.00x | <= 1.25x | yes "
        '| `make bench BENCH_ARGS="--only lambda"` |' in text
    )


def test_a_failing_command_reports_its_last_line_of_output() -> None:
    script = "import sys; print('collected 3 items'); print('1 failed, 2 passed'); sys.exit(3)"
    with pytest.raises(RuntimeError) as raised:
        run.measure_command([sys.executable, "-c", script])
    assert run.last_line(raised.value).endswith("exited 3: 1 failed, 2 passed")
    assert "collected 3 items" in str(raised.value)


def test_the_results_say_whether_the_run_has_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def fake_plan(shared: run.Shared, sections: list[str], *, skip_tests: bool) -> list[Step]:
        def look() -> object:
            seen.append(json.loads((tmp_path / "r.json").read_text())["complete"])
            return _row("x")

        return [Step("size", "x", look)]

    monkeypatch.setattr(run, "plan", fake_plan)
    run.main(["--only", "size", "--out", str(tmp_path / "r.json")])
    assert seen == [False]
    assert json.loads((tmp_path / "r.json").read_text())["complete"] is True


def test_docs_performance_shows_the_table_of_bench_results() -> None:
    """docs/performance.md's table is what `python -m bench.run --table` makes of results.json
    (not while a bench run, the one timing this suite perhaps, is still writing it)."""
    document = run.load(run.RESULTS)
    if not document.get("complete", True):
        pytest.skip("a bench run is writing bench/results.json")
    for doc in run.TABLE_DOCS:
        assert doc.read_text() == run.rewrite_doc(doc, document), doc
