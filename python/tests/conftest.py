"""Fixtures: connection strings for the throwaway cluster (scripts/python-test.sh exports them)
and the tenants of the fixture database it creates (tests/python_fixture.sql)."""

import os
import uuid

import pytest

TENANTS = [uuid.UUID(f"0000000a-0000-4000-8000-{n:012x}") for n in range(1, 21)]
ROWS_PER_TENANT = 5


def _dsn(user: str) -> str:
    return f"host={os.environ['PGHOST']} port={os.environ['PGPORT']} dbname={os.environ['SAFEGUARD_PY_DB']} user={user}"


@pytest.fixture(scope="session")
def app_dsn() -> str:
    """The application role: GRANTs only, neither owner nor superuser."""
    return _dsn("sg_py_app")


@pytest.fixture(scope="session")
def reader_dsn() -> str:
    """A role granted safeguard.decrypt()."""
    return _dsn("sg_py_reader")


@pytest.fixture(scope="session")
def owner_dsn() -> str:
    """The tables' owner (runs the migrations)."""
    return _dsn("sg_py_owner")


def engine_args(driver: str, user: str):
    """URL and connect_args of a SQLAlchemy engine on the Unix socket of the throwaway cluster."""
    return (
        f"postgresql+{driver}://{user}@/{os.environ['SAFEGUARD_PY_DB']}",
        {"host": os.environ["PGHOST"], "port": int(os.environ["PGPORT"])},
    )
