"""A problem found in a site file: where (file, YAML path, line), which rule, and what."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
