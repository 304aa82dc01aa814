"""A problem found in a site file: where (file, YAML path, line), which rule, and what."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

RULES: Mapping[str, str] = MappingProxyType(
    {
        # --- reading the file
        "unreadable": "the file cannot be read, or is not UTF-8",
        "yaml-syntax": "the text is not valid YAML (or JSON)",
        "empty-file": "the file holds no site",
        "duplicate-key": "a mapping gives the same key twice; YAML would keep only the last",
        # --- fields (pydantic)
        "unknown-key": "a key the site model does not know (typo, wrong unit suffix)",
        "missing-field": "a required field is absent",
        "wrong-type": "a value of the wrong type (text for a number, a list for a mapping...)",
        "out-of-range": "a number outside its physical range, NaN or infinite; a list too short",
        "not-allowed": "a value outside its allowed set (feed side, tier...)",
        "bad-id": "an id that is empty, too long or has characters other than A-Z a-z 0-9 _ . : / -",
        "invalid-value": "an object whose fields contradict each other (idle above peak, VA below W...)",
        # --- the graph (rules.py, power_rules.py, capacity_rules.py)
        "duplicate-id": "an id already used by another object of any kind",
        "dangling-ref": "a reference to an id that does not exist or is of the wrong kind",
        "dependency-cycle": "services that depend on each other in a loop (the cycle is named)",
        "redundancy-unmet": "an N+1 or 2N claim that the PSU ratings or the wiring cannot meet",
        "outlet-over-breaker": "a PDU phase whose connected peak exceeds 80 % of its breaker",
        "phase-out-of-range": "an outlet on a phase its PDU does not have",
        "no-power-path": "a server with no PSUs in a rack that no racklet feeds",
        "ats-same-source": "an ATS whose two sources are the same feed",
        "duplicate-partition": "a stream partition owned by two event processors",
        # --- warnings: the site loads
        "breaker-failover": "a PDU phase that would exceed 80 % of its breaker once redundant supplies fail over",
        "oversubscribed": "a feed, ATS or UPS whose connected peak exceeds its capacity",
        "cooling-short": "a rack or racklet whose servers' peak exceeds its cooling capacity",
        "depends-on-lower-tier": "a service depending on a less important one, which it keeps up",
    }
)
"""Every rule a site problem can name, with what it means (stable names: scripts match on them)."""


class Severity(StrEnum):
    """Errors make a site unusable; warnings are reported but the site loads."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule at one place of a site file.

    Attributes:
        path: YAML path such as ``servers[3].psus[0].input``.
        rule: Stable rule name (``unknown-key``, ``dangling-ref``, ``dependency-cycle``...).
        message: What is wrong, in words an operator can act on.
        severity: Error or warning.
        file: The file, when the site came from one.
        line: 1-based line in the file, when known.
    """

    path: str
    rule: str
    message: str
    severity: Severity = Severity.ERROR
    file: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<site>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.severity}: {self.path}: [{self.rule}] {self.message}"

    def as_dict(self) -> dict[str, str | int | None]:
        """JSON-ready form."""
        return {
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "rule": self.rule,
            "severity": str(self.severity),
            "message": self.message,
        }
