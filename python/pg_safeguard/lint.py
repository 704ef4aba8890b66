"""``safeguard.lint()`` in test suites: fail on findings, with each finding's remediation SQL.

::

    def test_schema_is_clean(db_connection):          # any DB-API connection (psycopg, ...)
        pg_safeguard.lint.assert_clean(db_connection)

or, with pytest, the ``safeguard_lint`` fixture (``pg_safeguard.pytest_plugin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

LEVELS = ("ERROR", "WARN", "INFO")


@dataclass(frozen=True)
class Finding:
    level: str
    rule: str
    object: str
    detail: str
    remediation: Optional[str]

    def __str__(self) -> str:
        fix = self.remediation or "(no single statement: see docs/lint.md)"
        return f"{self.level} {self.rule} {self.object}: {self.detail}\n    fix: {fix}"


def findings(conn: Any, schema: Optional[str] = None, levels: Sequence[str] = ("ERROR",)) -> List[Finding]:
    """The findings of ``safeguard.lint(schema)`` at the given levels (a DB-API connection)."""
    unknown = set(levels) - set(LEVELS)
    if unknown:
        raise ValueError(f"unknown lint levels: {sorted(unknown)}")
    cursor = conn.cursor()
    try:
        cursor.execute(
            "SELECT level, rule, object, detail, remediation FROM safeguard.lint(%s) WHERE level = ANY(%s)",
            (schema, list(levels)),
        )
        return [Finding(*row) for row in cursor.fetchall()]
    finally:
        cursor.close()


class LintFindings(AssertionError):
    """Raised by ``assert_clean``: the message lists every finding and its remediation."""


def assert_clean(conn: Any, schema: Optional[str] = None, levels: Sequence[str] = ("ERROR",)) -> None:
    """Raises ``LintFindings`` when ``safeguard.lint()`` reports anything at ``levels``."""
    found = findings(conn, schema, levels)
    if found:
        listed = "\n".join(str(f) for f in found)
        raise LintFindings(f"safeguard.lint() reports {len(found)} finding(s):\n{listed}")
