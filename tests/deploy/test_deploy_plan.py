"""What `deploy.sh deploy`, `rollback` and `status` do, read from their --dry-run plans (there
is no Docker daemon under the tests, so the commands themselves are printed, not run): the
schema is migrated with the new image before any service switches, services switch one at a
time each behind its readiness gate, and the tag replaced is the one a rollback returns to."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from tests.deploy.deploy_files import DEPLOY

DEPLOY_SH = DEPLOY / "deploy.sh"
COMPOSE = [
    "docker",
    "compose",
    "-f",
    str(DEPLOY / "compose.yaml"),
    "-f",
    str(DEPLOY / "compose.prod.yaml"),
]


def plan(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LMS_", "DEPLOY_"))}
    env.update(DEPLOY_STATE_DIR=str(state_dir), DEPLOY_NODES="lms1 lms2", DEPLOY_WORKERS="worker")
    return subprocess.run(
        [str(DEPLOY_SH), *args, "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def planned(state_dir: Path, *args: str) -> list[str]:
    result = plan(state_dir, *args)
    assert result.returncode == 0, result.stderr
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


def commands(steps: list[str]) -> list[list[str]]:
    """The steps that are commands, as the argv the shell would run."""
    return [shlex.split(step) for step in steps if step.startswith("env ")]


def deployed(state_dir: Path, current: str, previous: str = "") -> Path:
    state_dir.mkdir(exist_ok=True)
    state = state_dir / ".deploy-state"
    state.write_text(f"current={current}\nprevious={previous}\n")
    return state


def test_an_upgrade_migrates_with_the_new_image_before_switching_one_service_at_a_time(
    tmp_path: Path,
) -> None:
    state = deployed(tmp_path, "v1", "v0")
    steps = planned(tmp_path, "deploy", "v2")
    with_v2 = ["env", "LMS_IMAGE_TAG=v2", *COMPOSE]
    assert commands(steps) == [
        [*with_v2, "run", "--rm", "migrate"],
        [*with_v2, "up", "-d", "--no-recreate"],  # what is not running yet; the rest below
        [*with_v2, "up", "-d", "--no-deps", "lms1"],
        [*with_v2, "up", "-d", "--no-deps", "lms2"],
        [*with_v2, "up", "-d", "--no-deps", "worker"],
    ]
    migrate = next(i for i, step in enumerate(steps) if step.endswith("run --rm migrate"))
    switches = [i for i, step in enumerate(steps) if " up -d --no-deps " in step]
    gates = [i for i, step in enumerate(steps) if step.startswith("wait until ")]
    assert migrate < switches[0]
    # Each service's gate comes after it switched and before the next one does.
    assert switches[0] < gates[0] < switches[1] < gates[1] < switches[2] < gates[2]
    assert "/api/v1/monitoring/health answers 200" in steps[gates[0]]
    # The tag replaced is recorded before the switch, so a switch that stops can be undone.
    record = steps.index(f"record current=v2 previous=v1 in {state}")
    assert migrate < record < switches[0]
    assert state.read_text() == "current=v1\nprevious=v0\n"  # a dry run changes nothing


def test_a_rollback_returns_to_the_previous_tag_without_migrating(tmp_path: Path) -> None:
    state = deployed(tmp_path, "v2", "v1")
    steps = planned(tmp_path, "rollback")
    with_v1 = ["env", "LMS_IMAGE_TAG=v1", *COMPOSE]
    assert commands(steps) == [
        [*with_v1, "up", "-d", "--no-deps", "lms1"],
        [*with_v1, "up", "-d", "--no-deps", "lms2"],
        [*with_v1, "up", "-d", "--no-deps", "worker"],
    ]
    assert f"record current=v1 previous=v2 in {state}" in steps


def test_a_rollback_with_no_previous_tag_changes_nothing(tmp_path: Path) -> None:
    deployed(tmp_path, "v1")
    refused = plan(tmp_path, "rollback")
    assert refused.returncode != 0
    assert "no previous tag recorded" in refused.stderr
    assert "docker" not in refused.stdout


def test_a_first_deploy_records_no_previous_tag(tmp_path: Path) -> None:
    steps = planned(tmp_path, "deploy", "v1")
    assert f"record current=v1 previous=none in {tmp_path / '.deploy-state'}" in steps


def test_deploying_the_running_tag_again_keeps_the_previous_one_to_roll_back_to(
    tmp_path: Path,
) -> None:
    state = deployed(tmp_path, "v2", "v1")
    assert f"record current=v2 previous=v1 in {state}" in planned(tmp_path, "deploy", "v2")


def test_status_names_the_running_and_the_previous_tag(tmp_path: Path) -> None:
    deployed(tmp_path, "v2", "v1")
    result = plan(tmp_path, "status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["current:  v2", "previous: v1"]


def test_a_tag_docker_would_refuse_is_refused_before_anything_runs(tmp_path: Path) -> None:
    refused = plan(tmp_path, "deploy", "v2; rm -rf /")
    assert refused.returncode != 0
    assert "deploy needs an image tag" in refused.stderr
    assert refused.stdout == ""
