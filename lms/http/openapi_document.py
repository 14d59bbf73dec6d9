"""The OpenAPI document (`/openapi.json`): every status a route can answer, as a client meets it.

quart-schema documents what each handler's decorators state (`returns`, and the refusals that
`json_body` and `authenticated` imply, lms/http/wire.py). Two kinds of answer it cannot see are
added here, for every route alike:
- 404 on a route with a path parameter: the id names nothing (or lies past the bigint range,
  `IdConverter`), whoever asks;
- answers without a body (204 No Content), declared with `no_body`: quart-schema documents
  JSON bodies only.
A route that documents no answer at all is not part of the JSON API (the pages, Prometheus'
text at `/metrics`, the unsubscribe page a mail links to) and is left out of the document, as
quart-schema's `hide` would.
tests/e2e/test_schema_fuzz.py checks a real node's answers against the document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, get_args, get_origin

from quart_schema import OpenAPIProvider
from quart_schema.openapi import QUART_SCHEMA_RESPONSE_ATTRIBUTE
from werkzeug.routing import Rule

from proto.api import ErrorBody

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])

_NO_BODY = "_lms_no_body"


def no_body(status: int, description: str) -> Callable[[H], H]:
    """Document that the handler may answer `status` with no body."""

    def decorate(handler: H) -> H:
        statuses = dict(getattr(handler, _NO_BODY, {}))
        statuses[status] = description
        setattr(handler, _NO_BODY, statuses)
        return handler

    return decorate


class Document(OpenAPIProvider):
    def generate_rules(self) -> Iterator[Rule]:
        for rule in super().generate_rules():
            handler = self._app.view_functions[rule.endpoint]
            if getattr(handler, QUART_SCHEMA_RESPONSE_ATTRIBUTE, None) or hasattr(
                handler, _NO_BODY
            ):
                yield rule

    def build_response_object(
        self, model: Any, headers_model: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """quart-schema documents `list[X]` as one X (it takes msgspec's first component):
        document an array of them."""
        if get_origin(model) is not list:
            return super().build_response_object(model, headers_model)
        [item] = get_args(model)
        response, components = super().build_response_object(item, headers_model)
        content = response["content"]["application/json"]
        content["schema"] = {"type": "array", "items": content["schema"]}
        return response, components

    def build_paths(self, rule: Rule) -> tuple[dict, dict]:
        paths, components = super().build_paths(rule)
        handler = self._app.view_functions[rule.endpoint]
        extra: dict[int, dict[str, Any]] = {
            status: {"description": description}
            for status, description in getattr(handler, _NO_BODY, {}).items()
        }
        if rule.arguments:
            missing, schemas = self.build_response_object(ErrorBody, None)
            missing["description"] = "Nothing has this id (or the caller may not know it has)."
            components.update(schemas)
            extra.setdefault(404, missing)
        for operations in paths.values():
            for operation in operations.values():
                for status, response in extra.items():
                    operation["responses"].setdefault(status, response)
        return paths, components
