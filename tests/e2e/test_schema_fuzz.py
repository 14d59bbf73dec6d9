"""The API fuzzed from its own OpenAPI document (schemathesis), against a real node: every
documented operation, with valid and invalid inputs, as a signed-in instructor, answers with a
status its document lists, a body of the documented type and schema, and never a 5xx.

schemathesis and hypothesis are synchronous (requests), so the run goes in a worker thread
while the trio test waits; the node is a process of its own, as an operator starts it. The
examples are bounded (`MAX_EXAMPLES` per operation and mode) and derandomized, so a run takes
the same requests each time and a failure reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import hypothesis
import pytest
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.admins import ADMIN, create_admin
from tests.e2e.nodes import NodeProcess, database_node_env, start_node
from tests.lms.http.conftest import log_in, make_instructor, sign_up

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 12
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations run with a user of their own, and why: each revokes its caller's tokens, which
# would turn every later request of the run into a 401.
OWN_USER = {
    "POST /api/v1/auth/logout": "ends every session of its caller",
}


@dataclass(frozen=True)
class Callers:
    instructor: str
    disposable: str


@dataclass(frozen=True)
class Fuzzed:
    operations: int
    requests: int
    failures: list[str]


async def callers(node: NodeProcess) -> Callers:
    async with httpx.AsyncClient(base_url=node.url, timeout=30) as api:
        admin = await log_in(api, *ADMIN)
        instructor = await make_instructor(api, admin, "fuzz-instructor@school.org")
        disposable = await sign_up(api, "fuzz-disposable@school.org")
        return Callers(instructor.access_token, disposable.access_token)


def fuzz(url: str, who: Callers) -> Fuzzed:
    """Every operation of the node's document, `MAX_EXAMPLES` cases per generation mode."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    sent = operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            token = who.disposable if operation.label in OWN_USER else who.instructor
            for mode in MODES:
                cases = Cases(url, session, {"Authorization": f"Bearer {token}"})
                try:
                    cases.run(operation, mode)
                except hypothesis.errors.Unsatisfiable:
                    # An operation that takes nothing (no parameter, no body) has no invalid
                    # input to send.
                    assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
                except (Exception, FailureGroup) as exc:
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
                sent += cases.sent
    return Fuzzed(operations, sent, failures)


@dataclass
class Cases:
    """Sends an operation's generated cases and checks each answer."""

    url: str
    session: requests.Session
    headers: dict[str, str]
    sent: int = 0

    def run(self, operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode) -> None:
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def check(case: schemathesis.Case) -> None:
            self.sent += 1
            case.call_and_validate(
                base_url=self.url, session=self.session, headers=self.headers, checks=CHECKS
            )

        check()


async def test_every_operation_answers_as_its_document_says_and_never_with_a_5xx(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = database_node_env(
        tmp_path, database_url, LMS_REDIS_URL=redis_url, LMS_TRANSCODE_WORKERS="0"
    )
    await create_admin(env)
    node = await start_node(env, tmp_path / "node.log")
    try:
        fuzzed = await trio.to_thread.run_sync(fuzz, node.url, await callers(node))
    finally:
        assert await node.stop() == 0, node.log()
    assert fuzzed.failures == [], "\n\n".join(fuzzed.failures)
    assert fuzzed.operations >= 50
    assert "Traceback" not in node.log()
