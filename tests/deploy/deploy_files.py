"""The deployment's files as the deploy tests read them: compose files with compose's own YAML
tags, and the services that run the LMS image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
LMS_IMAGE = "lms-streaming:"
MEDIA_VOLUME = "media:/var/lib/lms/media"


class _ComposeLoader(yaml.SafeLoader):
    """YAML plus compose's `!reset` and `!override` (an override file's way to drop or replace
    a key of the file before it)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: None)
_ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: (
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)
    ),
)


def load_compose(name: str) -> dict[str, Any]:
    loaded = yaml.load((DEPLOY / name).read_text(), Loader=_ComposeLoader)  # noqa: S506 - _ComposeLoader is a SafeLoader
    assert isinstance(loaded, dict), f"{name} is not a mapping"
    return loaded


def load_yaml(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / name).read_text())
    assert isinstance(loaded, dict), f"{name} is not a mapping"
    return loaded


def services(name: str = "compose.yaml") -> dict[str, dict[str, Any]]:
    return load_compose(name)["services"]


def lms_services() -> dict[str, dict[str, Any]]:
    """The services that run the LMS image (built from the checkout or a release tag)."""
    return {
        name: service
        for name, service in services().items()
        if "build" in service or str(service.get("image", "")).startswith(LMS_IMAGE)
    }


def serving_nodes() -> set[str]:
    """The LMS services running the image's default command, `lms serve`."""
    return {name for name, service in lms_services().items() if "command" not in service}
