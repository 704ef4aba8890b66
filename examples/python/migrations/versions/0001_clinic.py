"""The clinic: tables, then pg_safeguard on them (isolation, scoped keys, audit, encryption, rules).

Revision ID: 0001_clinic
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from pg_safeguard.sqlalchemy import EncryptedText, Ulid

revision = "0001_clinic"
down_revision = None
branch_labels = None
depends_on = None

ULID_KEY = dict(primary_key=True, server_default=sa.text("safeguard.ulid()"))


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", UUID(as_uuid=True), **ULID_KEY),
        sa.Column("name", sa.Text, nullable=False),
    )
    op.create_table(
        "providers",
        sa.Column("id", UUID(as_uuid=True), **ULID_KEY),
        sa.Column("organization_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("full_name", sa.Text, nullable=False),
        sa.Column("npi_number", sa.Text),
        sa.CheckConstraint("safeguard.is_valid_npi(npi_number)", name="npi_valid"),
    )
    op.create_table(
        "patients",
        sa.Column("id", UUID(as_uuid=True), **ULID_KEY),
        sa.Column("organization_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("full_name", sa.Text, nullable=False),
        sa.Column("date_of_birth", sa.Date),
        sa.Column("medical_history", EncryptedText),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "appointments",
        sa.Column("id", Ulid, primary_key=True, server_default=sa.text("safeguard.gen_ulid()")),
        sa.Column("organization_id", UUID(as_uuid=True), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("patient_id", UUID(as_uuid=True), sa.ForeignKey("patients.id", name="appointments_patient_id_fkey"), nullable=False),
        sa.Column("provider_id", UUID(as_uuid=True), sa.ForeignKey("providers.id", name="appointments_provider_id_fkey"), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "patient_contacts",
        sa.Column("id", UUID(as_uuid=True), **ULID_KEY),
        sa.Column("patient_id", UUID(as_uuid=True), sa.ForeignKey("patients.id"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )

    # Tenant isolation: each clinic sees its own rows; contacts through their patient; the keys
    # between isolated tables carry the clinic on both sides.
    op.isolate("providers", "organization_id")
    op.isolate("patients", "organization_id")
    op.isolate("appointments", "organization_id")
    op.isolate_via("patient_contacts", "patient_id", "patients")
    op.scope_foreign_key("appointments", "appointments_patient_id_fkey")
    op.scope_foreign_key("appointments", "appointments_provider_id_fkey")

    # Audit every change; encrypted histories are logged as ciphertext.
    for table in ("providers", "patients", "appointments", "patient_contacts"):
        op.enable_audit(table)

    # Rules the application used to enforce in code.
    op.require_unique("providers", ["organization_id", "npi_number"], where="npi_number IS NOT NULL")
    op.require_order("appointments", "starts_at", "ends_at")
    op.maintain_timestamps("patients")
    op.classify("patients", ["medical_history"], "phi")

    op.execute("GRANT SELECT ON organizations TO clinic_example_app")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON providers, patients, appointments, patient_contacts "
               "TO clinic_example_app")


def downgrade() -> None:
    op.drop_rule_of("maintain_timestamps", "patients")
    op.drop_rule_of("require_order", "appointments", "starts_at", "ends_at")
    op.drop_rule_of("require_unique", "providers", ["organization_id", "npi_number"], where="npi_number IS NOT NULL")
    for table in ("patient_contacts", "appointments", "patients", "providers"):
        op.disable_audit(table)
    op.drop_table("patient_contacts")
    op.drop_table("appointments")
    op.drop_table("patients")
    op.drop_table("providers")
    op.drop_table("organizations")
