"""The DMTF ``$expand`` query parameter (DSP0266 "Query parameters") for emulated Redfish services.

``$expand=.`` replaces every link outside a ``Links`` property by the resource it points to,
``$expand=~`` only the links inside ``Links``, ``$expand=*`` both; ``($levels=n)`` repeats
that inside each expanded resource, ``n`` levels deep (1 when omitted). A link is an object
whose only property is ``@odata.id``; a link that does not resolve stays a link.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

Json = dict[str, Any]
Resolver = Callable[[str], Json | None]

MAX_EXPAND_LEVELS = 6
_EXPAND = re.compile(r"^([.*~])(?:\(\$levels=(\d+)\))?$")


class ExpandQueryError(ValueError):
    """The ``$expand`` value is malformed or asks for more levels than the service allows."""


@dataclass(frozen=True, slots=True)
class Expand:
    """A parsed ``$expand``.

    Attributes:
        mode: ``.`` (links outside ``Links``), ``~`` (links inside ``Links``) or ``*`` (all).
        levels: How many levels deep.
    """

    mode: str
    levels: int = 1

    def wanted(self, in_links: bool) -> bool:
        """Whether a link at this place is expanded."""
        return self.mode == "*" or (self.mode == "~") == in_links


def parse_expand(query: str) -> Expand | None:
    """The ``$expand`` of a raw (percent-encoded) query string, or ``None`` when absent.

    Raises:
        ExpandQueryError: Malformed value, or ``$levels`` outside 1..``MAX_EXPAND_LEVELS``.
    """
    value = dict(parse_qsl(query, keep_blank_values=True)).get("$expand")
    if value is None:
        return None
    match = _EXPAND.match(value)
    if match is None:
        raise ExpandQueryError(f"$expand={value!r} is not one of ., ~, * with an optional ($levels=n)")
    levels = int(match.group(2) or 1)
    if not 1 <= levels <= MAX_EXPAND_LEVELS:
        raise ExpandQueryError(f"$levels={levels} is outside 1..{MAX_EXPAND_LEVELS}")
    return Expand(match.group(1), levels)


def expand(body: Json, resolve: Resolver, how: Expand) -> Json:
    """``body`` with its links expanded as ``how`` asks.

    Args:
        body: A resource.
        resolve: ``@odata.id`` → resource body, ``None`` when there is no such resource.
        how: Mode and levels.

    Returns:
        A new body; ``body`` is not changed.
    """
    out = _walk(body, resolve, how, in_links=False)
    assert isinstance(out, dict)
    return out


def _walk(value: object, resolve: Resolver, how: Expand, *, in_links: bool) -> object:
    if isinstance(value, list):
        return [_walk(v, resolve, how, in_links=in_links) for v in value]
    if not isinstance(value, dict):
        return value
    target = value.get("@odata.id")
    if len(value) == 1 and isinstance(target, str):
        if not how.wanted(in_links) or (found := resolve(target)) is None:
            return value
        return found if how.levels == 1 else expand(found, resolve, Expand(how.mode, how.levels - 1))
    return {k: _walk(v, resolve, how, in_links=in_links or k == "Links") for k, v in value.items()}
