"""The clinic's tables as SQLAlchemy models. Organizations are the tenants; every other table
belongs to one, directly (organization_id) or through its patient (contacts). IDs are minted by
the database (safeguard.ulid(): time-ordered, valid UUIDv7); medical histories are encrypted
under the clinic's own key and stay envelopes in Python."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Optional

from sqlalchemy import Date, DateTime, ForeignKey, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pg_safeguard.sqlalchemy import EncryptedText, Ulid, ulid_primary_key


class Base(DeclarativeBase):
    pass


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[uuid.UUID] = ulid_primary_key()
    name: Mapped[str] = mapped_column(Text)


class Provider(Base):
    __tablename__ = "providers"
    id: Mapped[uuid.UUID] = ulid_primary_key()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    full_name: Mapped[str] = mapped_column(Text)
    npi_number: Mapped[Optional[str]] = mapped_column(Text)


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[uuid.UUID] = ulid_primary_key()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    full_name: Mapped[str] = mapped_column(Text)
    date_of_birth: Mapped[Optional[date]] = mapped_column(Date)
    medical_history = mapped_column(EncryptedText, nullable=True)
    # Kept by the database (safeguard.maintain_timestamps), never by the application's clock.
    created_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class Appointment(Base):
    __tablename__ = "appointments"
    # The 16-byte safeguard.ulid type, a 26-character ULID string in Python.
    id: Mapped[str] = mapped_column(Ulid, primary_key=True, server_default=text("safeguard.gen_ulid()"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id", name="appointments_patient_id_fkey"))
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("providers.id", name="appointments_provider_id_fkey"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class PatientContact(Base):
    __tablename__ = "patient_contacts"
    id: Mapped[uuid.UUID] = ulid_primary_key()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
