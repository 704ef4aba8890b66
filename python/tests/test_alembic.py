"""Alembic: the helpers as migration operations (online and offline), their undo operations, and
an autogenerate after them that finds nothing to do (the filter of pg_safeguard.alembic)."""

import io
import os
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, text
from sqlalchemy.dialects.postgresql import UUID

import pg_safeguard.alembic
from pg_safeguard.sqlalchemy import EncryptedText

metadata = sa.MetaData()
patients = sa.Table(
    "patients", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("safeguard.ulid()")),
    sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
    sa.Column("mrn", sa.Text, nullable=False),
    sa.Column("history", EncryptedText),
    sa.Column("appointment_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
)
appointments = sa.Table(
    "appointments", metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("safeguard.ulid()")),
    sa.Column("tenant_id", UUID(as_uuid=True), nullable=False),
    sa.Column("patient_id", UUID(as_uuid=True), sa.ForeignKey("patients.id", name="appointments_patient_fk"), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
)
notes = sa.Table(
    "patient notes", metadata,  # a name that needs quoting
    sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("safeguard.ulid()")),
    sa.Column("patient_id", UUID(as_uuid=True), sa.ForeignKey("patients.id"), nullable=False),
    sa.Column("body", sa.Text),
)


def upgrade(op):
    metadata.create_all(op.get_bind())
    op.isolate("patients")
    op.isolate("appointments")
    op.isolate_via("patient notes", "patient_id", "patients")
    op.scope_foreign_key("appointments", "appointments_patient_fk")
    op.enable_audit("patients", exclude_columns=["history"])
    op.require_unique("patients", ["tenant_id", "mrn"], where="deleted_at IS NULL")
    op.require_values("appointments", "status", ["booked", "done", "it's cancelled"])
    op.require_order("appointments", "starts_at", "ends_at")
    op.maintain_timestamps("patients")
    op.protect_columns("patients", ["mrn"])
    op.maintain_count("patients", "appointment_count", "appointments", "patient_id", where="status <> 'it''s cancelled'")
    op.classify("patients", ["mrn", "history"], "phi")
    op.execute('GRANT SELECT, INSERT, UPDATE, DELETE ON patients, appointments, "patient notes" TO sg_py_app')


def downgrade(op):
    op.drop_rule_of("maintain_count", "patients", "appointment_count", "appointments", "patient_id",
                    where="status <> 'it''s cancelled'")
    op.drop_rule_of("protect_columns", "patients", ["mrn"])
    op.drop_rule_of("maintain_timestamps", "patients")
    op.drop_rule_of("require_order", "appointments", "starts_at", "ends_at")
    op.drop_rule_of("require_values", "appointments", "status", ["booked", "done", "it's cancelled"])
    op.drop_rule_of("require_unique", "patients", ["tenant_id", "mrn"], where="deleted_at IS NULL")
    op.drop_rule_of("scope_foreign_key", "appointments", "appointments_patient_fk")
    op.disable_audit("patients")
    op.unisolate("patient notes")
    op.unisolate("appointments")
    op.unisolate("patients")
    # scope_foreign_key's unique key on the parent is a rule of its own (other keys may use it).
    op.execute("SELECT safeguard.drop_rule('patients', name) FROM safeguard.rule_registry "
               "WHERE tbl = 'patients'::regclass AND name = 'sg_unique_patients_tenant_id_id'")


@pytest.fixture(scope="module")
def owner_engine():
    engine = create_engine(f"postgresql+psycopg://sg_py_owner@/{os.environ['SAFEGUARD_ALEMBIC_DB']}",
                           connect_args={"host": os.environ["PGHOST"], "port": int(os.environ["PGPORT"])})
    yield engine
    engine.dispose()


def _diff(conn, filtered=True):
    opts = {"compare_type": True, "include_schemas": True}
    if filtered:
        opts.update(pg_safeguard.alembic.autogenerate_options(conn))
    return compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)


def test_operations_then_autogenerate_finds_nothing(owner_engine):
    with owner_engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        upgrade(op)
        upgrade(op)  # idempotent: a migration run twice changes nothing
    with owner_engine.connect() as conn:
        assert _diff(conn) == []
        # Without the filter, autogenerate would drop what the extension made.
        unfiltered = _diff(conn, filtered=False)
        assert any(d[0] == "remove_table" and d[1].schema == "safeguard" for d in unfiltered)
        assert any(d[0] == "remove_index" and d[1].name.startswith("sg_") for d in unfiltered)
        assert any(d[0] == "remove_fk" and d[1].name == "appointments_patient_fk" for d in unfiltered)
        # The extension's types are compared, not skipped: a model that says text is a change.
        plain = sa.MetaData()
        for table in metadata.tables.values():
            table.to_metadata(plain)
        plain.tables["patients"].c.history.type = sa.Text()
        context = MigrationContext.configure(conn, opts={"compare_type": True, **pg_safeguard.alembic.autogenerate_options(conn)})
        changes = compare_metadata(context, plain)
        assert [c[0][0] for c in changes if isinstance(c, list)] == ["modify_type"]
        rules = conn.execute(text("SELECT count(*) FROM safeguard.rule_registry")).scalar_one()
        policies = conn.execute(text("SELECT count(*) FROM pg_policies WHERE schemaname = 'public'")).scalar_one()
    assert rules == 8 and policies >= 3


def test_the_rules_work_as_the_application(owner_engine, app_dsn):
    import psycopg
    tenant = uuid.uuid4()
    with psycopg.connect(app_dsn.replace(os.environ["SAFEGUARD_PY_DB"], os.environ["SAFEGUARD_ALEMBIC_DB"])) as conn:
        conn.execute("SELECT safeguard.set_context(%s)", (tenant,))
        patient = conn.execute("INSERT INTO patients (tenant_id, mrn) VALUES (%s, 'MRN-1') RETURNING id", (tenant,)).fetchone()[0]
        conn.execute("INSERT INTO appointments (tenant_id, patient_id, status, starts_at, ends_at) VALUES "
                     "(%s, %s, 'booked', now(), now() + interval '1 hour')", (tenant, patient))
        assert conn.execute("SELECT appointment_count FROM patients").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.IntegrityError):  # require_values
            conn.execute("INSERT INTO appointments (tenant_id, patient_id, status, starts_at, ends_at) VALUES "
                         "(%s, %s, 'lost', now(), now())", (tenant, patient))
        conn.rollback()


def test_downgrade_undoes_every_operation(owner_engine):
    with owner_engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        op.require_values("patient notes", "body", ["kept"])  # a rule of another migration
        downgrade(op)
        downgrade(op)  # undone twice: nothing left behind, nothing made again, no error
    with owner_engine.connect() as conn:
        assert conn.execute(text("SELECT kind FROM safeguard.rule_registry")).scalars().all() == ["values"]
        assert conn.execute(text("SELECT count(*) FROM pg_policies WHERE schemaname = 'public'")).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'patients'::regclass "
                                 "AND NOT tgisinternal")).scalar_one() == 0
    with owner_engine.begin() as conn:  # and back up, for the next tests
        op = Operations(MigrationContext.configure(conn))
        op.drop_rule_of("require_values", "patient notes", "body", ["kept"])
        upgrade(op)


def test_offline_sql_runs_as_is(owner_engine):
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer})
    op = Operations(context)
    op.require_unique("patient notes", ["patient_id", "body"], where="body <> 'it''s'")
    op.enable_audit("patient notes", exclude_columns=["body"])
    sql = buffer.getvalue()
    assert "safeguard.require_unique(" in sql and "'patient notes'" in sql
    with owner_engine.begin() as conn:
        conn.exec_driver_sql(sql)
        names = conn.execute(text("SELECT name FROM safeguard.rule_registry WHERE tbl = '\"patient notes\"'::regclass")).scalars().all()
    assert len(names) == 1
