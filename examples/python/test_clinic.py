"""The example clinic end to end, as make test runs it (scripts/python-test.sh): the Alembic
migration through the alembic command, an autogenerate that finds nothing, two clinics using the
HTTP API, the reminder job on the asyncio engine, and lint."""

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

import pg_safeguard.lint
from clinic.app import ClinicApp
from clinic.jobs import REMINDER_JOB, send_reminders

HERE = Path(__file__).parent
DB = os.environ["SAFEGUARD_EXAMPLE_DB"]
SOCKET = f"host={os.environ['PGHOST']}&port={os.environ['PGPORT']}"
OWNER_URL = f"postgresql+psycopg://clinic_example_owner@/{DB}?{SOCKET}"
APP_URL = f"postgresql+psycopg://clinic_example_app@/{DB}?{SOCKET}"
ASYNC_APP_URL = f"postgresql+asyncpg://clinic_example_app@/{DB}"
USER_A, USER_B = uuid.uuid4(), uuid.uuid4()


def alembic(*args, check=True, cwd=HERE):
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(cwd / "alembic.ini"), *args], cwd=cwd,
                          env={**os.environ, "CLINIC_OWNER_URL": OWNER_URL}, capture_output=True, text=True, check=check)


def superuser():
    return psycopg.connect(f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB}", autocommit=True)


@pytest.fixture(scope="module")
def clinics():
    """Migrated database and two clinics with their keys and a provider each."""
    alembic("upgrade", "head")
    with superuser() as conn:
        ids = [row[0] for row in conn.execute(
            "INSERT INTO organizations (name) VALUES ('Riverside Family Practice'), ('Lakeview Physical Therapy') "
            "RETURNING id")]
        for clinic, npi in zip(ids, ("1234567893", "1245319599")):
            conn.execute("SELECT safeguard.create_key(%s)", (clinic,))
            with conn.transaction():
                conn.execute("SELECT safeguard.set_context(%s)", (clinic,))
                conn.execute("INSERT INTO providers (organization_id, full_name, npi_number) VALUES (%s, 'Dr. Lima', %s)",
                             (clinic, npi))
        providers = dict(conn.execute("SELECT organization_id, id FROM providers").fetchall())
    return ids, providers


def test_migration_then_autogenerate_is_empty(clinics, tmp_path):
    alembic("upgrade", "head")  # nothing left to do
    check = alembic("check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    # The revision a developer would generate, in a copy of the project (it writes a file).
    copy = tmp_path / "project"
    shutil.copytree(HERE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    alembic("revision", "--autogenerate", "-m", "check", cwd=copy)
    (generated,) = (copy / "migrations" / "versions").glob("*_check.py")
    source = generated.read_text()
    def statements(function):  # the function's body without Alembic's comment lines
        body = source.split(f"def {function}() -> None:")[1].split("\ndef ")[0]
        return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]

    assert statements("upgrade") == ["pass"] and statements("downgrade") == ["pass"], source


def test_offline_sql(clinics):
    sql = alembic("upgrade", "head", "--sql").stdout
    assert "safeguard.isolate(" in sql and "'organization_id'" in sql and "safeguard.scope_foreign_key(" in sql


@pytest.fixture(scope="module")
def app(clinics):
    engine = create_engine(APP_URL, pool_size=2, max_overflow=0)
    yield ClinicApp(engine)
    engine.dispose()


def call(app, method, path, clinic=None, user=None, body=None, request_id=None):
    payload = json.dumps(body).encode() if body is not None else b""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(payload)),
               "wsgi.input": io.BytesIO(payload)}
    for header, value in (("HTTP_X_ORGANIZATION_ID", clinic), ("HTTP_X_USER_ID", user), ("HTTP_X_REQUEST_ID", request_id)):
        if value is not None:
            environ[header] = str(value)
    answer = {}
    result = b"".join(app(environ, lambda status, headers: answer.update(status=int(status.split()[0]))))
    return answer["status"], json.loads(result)


def test_two_clinics_through_the_api(app, clinics):
    (clinic_a, clinic_b), providers = clinics
    status, created = call(app, "POST", "/patients", clinic_a, USER_A,
                           {"full_name": "Jane Roe", "medical_history": "asthma since 2019"}, "req-a-1")
    assert status == 201
    jane = created["id"]
    assert call(app, "POST", "/patients", clinic_b, USER_B, {"full_name": "John Doe"})[0] == 201

    status, seen_by_a = call(app, "GET", "/patients", clinic_a, USER_A)
    assert status == 200 and [p["full_name"] for p in seen_by_a] == ["Jane Roe"]
    assert [p["full_name"] for p in call(app, "GET", "/patients", clinic_b, USER_B)[1]] == ["John Doe"]
    # No clinic: nothing to see, nothing to write.
    assert call(app, "GET", "/patients") == (200, [])
    assert call(app, "POST", "/patients", body={"full_name": "Nobody"})[0] == 403
    # Clinic B cannot book Jane (clinic A's patient): the scoped key refuses it.
    start = datetime.now(timezone.utc) + timedelta(hours=3)
    booking = {"patient_id": jane, "provider_id": str(providers[clinic_b]),
               "starts_at": start.isoformat(), "ends_at": (start + timedelta(minutes=45)).isoformat()}
    assert call(app, "POST", "/appointments", clinic_b, USER_B, booking)[0] == 409
    # Clinic A can; an appointment that ends before it starts is refused (require_order).
    status, appointment = call(app, "POST", "/appointments", clinic_a, USER_A,
                               {**booking, "provider_id": str(providers[clinic_a])}, "req-a-2")
    assert status == 201 and len(appointment["id"]) == 26
    backwards = {**booking, "provider_id": str(providers[clinic_a]), "ends_at": (start - timedelta(hours=1)).isoformat()}
    assert call(app, "POST", "/appointments", clinic_a, USER_A, backwards)[0] == 409
    # The history: who created Jane, in which request; clinic B finds no such patient.
    status, entries = call(app, "GET", f"/patients/{jane}/history", clinic_a, USER_A)
    assert status == 200 and entries == [{"operation": "INSERT", "actor_id": str(USER_A), "request_id": "req-a-1",
                                          "changed_columns": None}]
    assert call(app, "GET", f"/patients/{jane}/history", clinic_b, USER_B)[0] == 404
    assert call(app, "GET", "/patients", "not-a-uuid")[0] == 400
    # The history is stored encrypted under clinic A's key.
    with superuser() as conn:
        stored = conn.execute("SELECT medical_history::text FROM patients WHERE id = %s", (jane,)).fetchone()[0]
    assert stored.startswith("sgenc:") and "asthma" not in stored


def test_reminder_job(app, clinics):
    (clinic_a, clinic_b), _ = clinics

    async def run():
        engine = create_async_engine(ASYNC_APP_URL, connect_args={"host": os.environ["PGHOST"],
                                                                  "port": int(os.environ["PGPORT"])})
        try:
            return await send_reminders(engine, "reminders-1"), await send_reminders(engine, "reminders-2")
        finally:
            await engine.dispose()

    first, second = asyncio.run(run())
    assert first == {clinic_a: 1, clinic_b: 0} and second == {clinic_a: 0, clinic_b: 0}
    with superuser() as conn:
        entry = conn.execute("SELECT actor_id, request_id, changed_columns FROM safeguard.audit_log "
                             "WHERE table_name = 'appointments' AND operation = 'UPDATE'").fetchall()
    assert entry == [(REMINDER_JOB, f"reminders-1:{clinic_a}", ["reminded_at"])]


def test_lint_is_clean(clinics):
    with psycopg.connect(f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={DB} "
                         "user=clinic_example_owner") as conn:
        pg_safeguard.lint.assert_clean(conn)
