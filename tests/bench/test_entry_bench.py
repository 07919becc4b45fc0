"""The bench's orderings and paired ratios (no timing), and that its baselines' bundles are what
they claim: the same-stack floor bundles without the service, bare Mangum beside hello."""

from __future__ import annotations

from bench.entry_bench import HELLO_BARE, HELLO_ENTRY, paired_ratio
from bench.lambda_bench import ENTRY_MODULE, OURS, SAME_STACK, _order


def test_two_targets_run_in_abba_order() -> None:
    orders = [_order(["a", "b"], n) for n in range(4)]
    assert orders == [["a", "b"], ["b", "a"], ["b", "a"], ["a", "b"]]


def test_more_targets_each_run_first_and_last_equally() -> None:
    names = ["a", "b", "c"]
    orders = [_order(names, n) for n in range(6)]
    assert all(sorted(order) == names for order in orders)
    assert sorted(order[0] for order in orders) == ["a", "a", "b", "b", "c", "c"]
    assert sorted(order[-1] for order in orders) == ["a", "a", "b", "b", "c", "c"]


def test_paired_ratio_is_the_median_of_adjacent_ratios() -> None:
    # A drift that doubles everything halfway through leaves each pair's ratio alone.
    assert paired_ratio([1.1, 2.2, 1.1, 2.2, 1.1], [1.0, 2.0, 1.0, 2.0, 1.0]) == 1.1


def test_ours_is_the_runtime_entry_configured_as_the_stack_does() -> None:
    assert OURS.module == ENTRY_MODULE == "serverless_fastapi_entry.lambda_api"
    assert dict(OURS.environment) == {
        "FASTAPI_DEPLOY_ENTRYPOINT": "webapi.main:create_app",
        "FASTAPI_DEPLOY_FACTORY": "1",
    }
    assert dict(OURS.extra_sources)["serverless_fastapi_entry"].is_dir()
    assert HELLO_ENTRY.extra_sources == OURS.extra_sources
    assert HELLO_BARE.requirements == HELLO_ENTRY.requirements  # one lock for both sides
    assert (HELLO_BARE.source_dir / "main.py").is_file()
    assert (SAME_STACK.source_dir / f"{SAME_STACK.module}.py").is_file()
