"""Conformance: schemathesis, with every check and all four phases (examples, coverage,
fuzzing, stateful), against the real server started as the container starts it, finds no
response the OpenAPI document does not declare and no server error.

The stateful phase chains requests through the document's links (webapi.openapi_links): sign
up, log in, create an item, read, change and delete it, attach files and remove them. What
the run did is read from schemathesis' own NDJSON report, not only from its exit code: that
every check ran, that the stateful phase ran its scenarios and followed every link, and that
no response anywhere was a 5xx.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PostgresForTests
from tests.service.live_server import live_server

API = "/api/v1"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Loaded by schemathesis only (importing it here would register its auth in this process).
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
PASSWORD = "correct horse battery"
SEED = 20240601
# Test cases per operation in the fuzzing phase (the examples and coverage phases generate
# what the schema defines, whatever this says).
MAX_EXAMPLES = 100
# The stateful phase: scenarios, each up to MAX_STEPS requests chained by links.
STATEFUL_SCENARIOS = 250
MIN_STATEFUL_SCENARIOS = 100
MAX_STEPS = 20
RUN_TIMEOUT_SECONDS = 300
# schemathesis run --checks all: every one of these runs on every response it applies to.
CHECKS = {
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
    "object_level_authorization",
    "max_response_time",  # no limit is set: it passes
}


def config_toml() -> str:
    """The run's schemathesis.toml: what the CLI cannot say per phase."""
    return f"""
seed = {SEED}
request-timeout = 10.0

[generation]
max-examples = {MAX_EXAMPLES}
# Nothing kept between runs: no example database.
database = "none"

[phases.stateful]
max-steps = {MAX_STEPS}

[phases.stateful.generation]
max-examples = {STATEFUL_SCENARIOS}

# Only the document's own links, no inferred ones: what this test checks is that they chain,
# and an inferred GET /users/me -> DELETE /users/{{user_id}} would delete the test's account in
# the middle of scenarios (its items with it).
[phases.stateful.inference]
algorithms = []
"""


def sign_up_and_log_in(base_url: str) -> str:
    email, password = "schemathesis@example.com", PASSWORD
    with httpx.Client(base_url=f"{base_url}{API}", timeout=10.0, trust_env=False) as client:
        created = client.post("/users", json={"email": email, "name": "Schemathesis", "password": password})
        assert created.status_code == 201, created.text
        login = client.post("/auth/token", data={"username": email, "password": password})
        assert login.status_code == 200, login.text
        return str(login.json()["access_token"])


def declared_links(document: dict[str, Any]) -> set[str]:
    """Every link of the document, named as schemathesis names a transition."""
    operations = {
        operation["operationId"]: f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    return {
        f"{method.upper()} {path} -> [{status}] {name} -> {operations[link['operationId']]}"
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        for status, response in operation["responses"].items()
        for name, link in response.get("links", {}).items()
    }


@dataclass
class Step:
    phase: str
    operation: str
    status: int | None
    transition: str | None  # the link whose values this request used


@dataclass
class Report:
    """What schemathesis' NDJSON report says the run did."""

    steps: list[Step]
    checks: Counter[tuple[str, str]]
    stateful_scenarios: int
    stop_reason: str | None

    @classmethod
    def read(cls, path: Path) -> Report:
        steps: list[Step] = []
        checks: Counter[tuple[str, str]] = Counter()
        scenarios, stop_reason = 0, None
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if "EngineFinished" in event:
                stop_reason = event["EngineFinished"].get("stop_reason")
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            phase, recorder = finished["phase"], finished["recorder"]
            if phase == "stateful" and finished["status"] != "skip":
                scenarios += 1
            interactions = recorder.get("interactions", {})
            for case_id, case in recorder.get("cases", {}).items():
                value = case["value"]
                response = (interactions.get(case_id) or {}).get("response") or {}
                transition = case.get("transition") if case.get("is_transition_applied") else None
                steps.append(
                    Step(
                        phase=phase,
                        operation=f"{value['method']} {value['path']}",
                        status=response.get("status_code"),
                        transition=transition["id"] if transition else None,
                    )
                )
            for results in recorder.get("checks", {}).values():
                checks.update((result["name"], result["status"]) for result in results)
        return cls(steps=steps, checks=checks, stateful_scenarios=scenarios, stop_reason=stop_reason)

    def statuses(self, phase: str) -> Counter[tuple[str, int | None]]:
        return Counter((step.operation, step.status) for step in self.steps if step.phase == phase)

    def followed(self) -> dict[str, Counter[int | None]]:
        """Per link, the statuses of the requests that used its values."""
        links: dict[str, Counter[int | None]] = defaultdict(Counter)
        for step in self.steps:
            if step.phase == "stateful" and step.transition is not None:
                links[step.transition][step.status] += 1
        return links


def table(counter: Mapping[Any, Any]) -> str:
    return "\n".join(f"  {key}: {value}" for key, value in sorted(counter.items(), key=str))


def found(link: str) -> set[int]:
    """The statuses that show a request fed by ``link`` reached what the link points at."""
    if link.startswith("DELETE "):
        return {404}
    if link.endswith("-> DELETE /api/v1/users/{user_id}"):
        return {403}  # a sign-up's account, not the test's own
    return {200, 201, 204}


def server_errors(report: Report) -> Iterator[Step]:
    return (step for step in report.steps if step.status is not None and step.status >= 500)


@pytest.mark.slow
def test_openapi_conformance(postgres: PostgresForTests, tmp_path: Path) -> None:
    database_url = postgres.migrated("app_schemathesis")
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_toml())
    ndjson = tmp_path / "events.ndjson"

    server_env = {
        # Schemathesis and the hooks sign up many users and fail many logins, all from 127.0.0.1:
        # the per-address limits would soon answer every sign-up and login with 429 (and the
        # hooks could no longer get a token). The per-account login limit stays.
        "SIGNUP_MAX_PER_CLIENT": "100000",
        "LOGIN_MAX_FAILURES_PER_CLIENT": "100000",
        # Attachments on, the local backend storing under the test's directory, with a small
        # upload limit (the document states it: sizes past it must be refused).
        "STORAGE_BACKEND": "local",
        "LOCAL_STORAGE_DIR": str(tmp_path / "storage"),
        "UPLOAD_MAX_BYTES": "4096",
    }
    with live_server(database_url, tmp_path / "server.log", **server_env) as server:
        document = httpx.get(f"{server.base_url}/openapi.json", timeout=10.0, trust_env=False).json()
        links = declared_links(document)
        assert links, "the served OpenAPI document has no links (create_app must call install_links)"
        token = sign_up_and_log_in(server.base_url)
        command = [
            str(SCHEMATHESIS),
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{server.base_url}/openapi.json",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--checks",
            "all",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(ndjson),
        ]
        env = {
            **os.environ,
            # The Authorization header: the token above, renewed if a test case deletes
            # the account (see the hooks module).
            "SCHEMATHESIS_HOOKS": str(HOOKS),
            "WEBAPI_BASE_URL": server.base_url,
            "WEBAPI_TEST_TOKEN": token,
            # Loopback only, whatever proxy the environment names.
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }
        started = time.monotonic()
        # cwd outside the repository: no other schemathesis.toml is picked up.
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
        elapsed = time.monotonic() - started
        output = f"{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, f"schemathesis failed:\n{output}\n--- server log ---\n{server.logs()}"

        # Graceful shutdown: uvicorn finishes the lifespan (the pool is disposed), then
        # re-raises the SIGTERM it caught, so the process ends by that signal (or 0).
        exit_code = server.stop(timeout=5)
        logs = server.logs(tail=2000)
        assert exit_code in (0, -signal.SIGTERM), f"server exited with {exit_code}\n{logs}"
        assert "Application shutdown complete." in logs, logs
        server_log = server.log_path.read_text(errors="replace")

    report = Report.read(ndjson)
    assert report.stop_reason == "completed", output
    errors = [f"{step.phase}: {step.operation} -> {step.status}" for step in server_errors(report)]
    assert not errors, "\n".join(errors)
    # Nor did the server log an error of its own (after an answer, say).
    logged = [
        line
        for line in server_log.splitlines()
        if any(mark in line for mark in ('"severity":"ERROR"', '"severity":"CRITICAL"', "Traceback"))
    ]
    assert not logged, "\n".join(logged[:20])
    ran = {name for name, _ in report.checks}
    assert ran == CHECKS, ran ^ CHECKS
    failed = {key: count for key, count in report.checks.items() if key[1] != "success"}
    assert not failed, table(failed)

    # The stateful phase ran at least MIN_STATEFUL_SCENARIOS of its STATEFUL_SCENARIOS and
    # followed every link. (Hypothesis counts only the scenarios it keeps, and ends the phase early
    # when a replayed scenario takes another course, which the service's own state can cause: a
    # login limit reached, an account deleted. Measured: 179 to 305 per run.)
    stateful = report.statuses("stateful")
    assert report.stateful_scenarios >= MIN_STATEFUL_SCENARIOS, f"{report.stateful_scenarios}\n{output}"
    followed = report.followed()
    assert set(followed) == links, (
        f"never followed:\n{table(dict.fromkeys(links - set(followed), 0))}\n"
        f"followed:\n{table(followed)}\nstateful responses:\n{table(stateful)}"
    )
    # ... and the token held: the chained requests were served, not refused.
    unauthorized = sum(count for (_, status), count in stateful.items() if status == 401)
    assert unauthorized <= 0.05 * stateful.total(), table(stateful)
    # Each link found what it leads to at least once: the resource (2xx); for a link from a
    # DELETE, the resource gone (404); for someone else's account, a refusal (403).
    missed = {link: statuses for link, statuses in followed.items() if not set(statuses) & found(link)}
    assert not missed, table(missed)

    # What the run did, beside its reports.
    summary = {
        "schemathesis_seconds": round(elapsed),
        "requests": len(report.steps),
        "stateful_scenarios": report.stateful_scenarios,
        "links_followed": {link: statuses.total() for link, statuses in followed.items()},
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary, indent=2))
