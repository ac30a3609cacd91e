"""Request-body limits (nesting depth, number size, string length, value count), each refused as a 400 that names
the limit and its setting, before any view, validator or journal walks the body."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from mock_server.domain.errors import ValidationError
from mock_server.settings import Settings


@dataclass(frozen=True)
class JsonLimits:
    depth: int = 32
    number_chars: int = 100
    string_chars: int = 65_536
    values: int = 10_000

    @classmethod
    def of(cls, settings: Settings) -> JsonLimits:
        return cls(
            settings.json_max_depth,
            settings.json_max_number_digits,
            settings.json_max_string_chars,
            settings.json_max_values,
        )


class LimitExceeded(ValidationError):
    """A body over one of the limits; its message names the limit and the setting that raises it."""


def _no_constants(name: str) -> Any:
    raise ValidationError(f"malformed JSON body: {name} is not a JSON number")


def loads(text: str, limits: JsonLimits) -> Any:
    """Parse JSON text within `limits`: LimitExceeded past one, json.JSONDecodeError when malformed."""

    def number(kind: type) -> Any:
        def parse(literal: str) -> Any:
            if len(literal) > limits.number_chars:
                raise LimitExceeded(
                    f"JSON body: a number of {len(literal)} characters is over the limit of "
                    f"{limits.number_chars} (setting json_max_number_digits)"
                )
            value = kind(literal)
            if kind is float and not math.isfinite(value):
                raise LimitExceeded(f"JSON body: the number {literal} is beyond the range of a double")
            return value

        return parse

    try:
        document = json.loads(text, parse_int=number(int), parse_float=number(float), parse_constant=_no_constants)
    except RecursionError:  # the C parser's own stack gave out: far deeper than any limit
        raise LimitExceeded(
            f"JSON body: nested deeper than the limit of {limits.depth} levels (setting json_max_depth)"
        ) from None
    check(document, limits, "JSON body")
    return document


def check(document: Any, limits: JsonLimits, what: str) -> None:
    """Walk a parsed document (iteratively: no recursion to exhaust) against the depth, string and count limits."""
    count = 0
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.values:
            raise LimitExceeded(
                f"{what}: more than the limit of {limits.values} values (fields, items and scalars; "
                "setting json_max_values)"
            )
        if isinstance(node, str):
            if len(node) > limits.string_chars:
                raise LimitExceeded(
                    f"{what}: a string of {len(node)} characters is over the limit of "
                    f"{limits.string_chars} (setting json_max_string_chars)"
                )
        elif isinstance(node, (dict, list)):
            if depth >= limits.depth:
                raise LimitExceeded(
                    f"{what}: nested deeper than the limit of {limits.depth} levels (setting json_max_depth)"
                )
            if isinstance(node, dict):
                for key, value in node.items():
                    if len(key) > limits.string_chars:
                        raise LimitExceeded(
                            f"{what}: a field name of {len(key)} characters is over the limit of "
                            f"{limits.string_chars} (setting json_max_string_chars)"
                        )
                    stack.append((value, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in node)
