"""deploy/env.example documents every LMS_* variable lms/config.py reads, and nothing else: an
operator copying it to .env sees every setting there is, with its default and meaning."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.deploy.deploy_files import DEPLOY

CONFIG = Path(__file__).resolve().parents[2] / "lms" / "config.py"
ENV_EXAMPLE = DEPLOY / "env.example"
LMS_NAME = re.compile(r"LMS_[A-Z0-9_]+")
# An assignment, set or commented out: `LMS_PORT=8000`, `#LMS_HOST=0.0.0.0`.
ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def names_config_reads() -> set[str]:
    """Every LMS_* name passed to a call in config.py (`reader.get("LMS_HOST", ...)`,
    `reader.parse("LMS_PORT", ...)`, or any helper that takes the name), read from its syntax
    tree, so names in comments, docstrings and error messages do not count."""
    tree = ast.parse(CONFIG.read_text())
    return {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for arg in node.args
        if isinstance(arg, ast.Constant)
        and isinstance(arg.value, str)
        and LMS_NAME.fullmatch(arg.value)
    }


def names_env_example_assigns() -> set[str]:
    return set(ASSIGNMENT.findall(ENV_EXAMPLE.read_text()))


def names_compose_interpolates() -> set[str]:
    return {
        name
        for path in sorted(DEPLOY.glob("compose*.yaml"))
        for name in INTERPOLATION.findall(path.read_text())
    }


def test_config_names_are_found() -> None:
    # Guards the two tests below against a parse that finds nothing and so passes.
    read = names_config_reads()
    assert {"LMS_DATABASE_URL", "LMS_SECRET_KEY", "LMS_PORT", "LMS_NODE_ID"} <= read
    assert len(read) > 30


def test_env_example_documents_every_variable_config_reads() -> None:
    missing = sorted(names_config_reads() - names_env_example_assigns())
    assert not missing, (
        f"lms/config.py reads these, deploy/env.example does not name them: {missing}"
    )


def test_env_example_names_no_lms_variable_that_nothing_reads() -> None:
    documented = {name for name in names_env_example_assigns() if name.startswith("LMS_")}
    # A name only compose reads (the release tag) is documented for compose, not for lms.
    stale = sorted(documented - names_config_reads() - names_compose_interpolates())
    assert not stale, f"deploy/env.example names variables nothing reads: {stale}"


def test_env_example_names_every_variable_the_compose_files_need() -> None:
    missing = sorted(names_compose_interpolates() - names_env_example_assigns())
    assert not missing, (
        f"compose files interpolate these, env.example does not name them: {missing}"
    )


def test_every_variable_in_env_example_comes_with_a_comment() -> None:
    """Each assignment has a comment above it (other assignments may sit between, as for a
    pair such as LMS_DB_POOL_MIN/MAX): the meaning and default are written down."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    bare = []
    for index, line in enumerate(lines):
        match = ASSIGNMENT.match(line)
        if match is None:
            continue
        above = index - 1
        while above >= 0 and ASSIGNMENT.match(lines[above]):
            above -= 1
        if above < 0 or not lines[above].startswith("#"):
            bare.append(match.group(1))
    assert not bare, f"deploy/env.example: no comment explains {bare}"
