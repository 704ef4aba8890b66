"""pytest plugin (entry point ``pg_safeguard``): the ``safeguard_lint`` fixture.

``safeguard_lint(conn, schema=None, levels=("ERROR",))`` fails the test with every finding of
``safeguard.lint()`` and its remediation SQL in the failure message.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from . import lint


@pytest.fixture
def safeguard_lint() -> Callable[..., None]:
    def check(conn: Any, schema: Any = None, levels: Any = ("ERROR",)) -> None:
        try:
            lint.assert_clean(conn, schema, levels)
        except lint.LintFindings as failure:
            pytest.fail(str(failure), pytrace=False)

    return check
