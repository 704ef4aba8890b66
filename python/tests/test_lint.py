"""The lint helper and the safeguard_lint fixture: silent on a clean schema, a failure that lists
each finding with its remediation on a flawed one."""

import psycopg
import pytest

from pg_safeguard import lint


def test_clean_schema_passes(owner_dsn, safeguard_lint):
    with psycopg.connect(owner_dsn) as conn:
        safeguard_lint(conn, "public")
        assert lint.findings(conn, "public") == []


def test_findings_fail_with_their_remediation(owner_dsn):
    with psycopg.connect(owner_dsn) as conn:
        conn.execute("CREATE TABLE flawed (id int PRIMARY KEY, tenant_id uuid NOT NULL)")
        try:
            with pytest.raises(lint.LintFindings) as failure:
                lint.assert_clean(conn, "public")
        finally:
            conn.rollback()
    message = str(failure.value)
    assert "tenant_table_not_isolated public.flawed" in message
    assert "fix: SELECT safeguard.isolate('public.flawed', 'tenant_id');" in message


def test_unknown_level_is_refused(owner_dsn):
    with psycopg.connect(owner_dsn) as conn, pytest.raises(ValueError):
        lint.findings(conn, levels=("FATAL",))
