"""A background job on the asyncio engine (asyncpg): tomorrow's appointment reminders, clinic by
clinic. A job has no web request, so it opens one context per clinic itself: every row it reads
and writes is that clinic's, and the audit log names the job and the run."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

import pg_safeguard

from .models import Appointment, Organization

# The job's own actor id, so that the audit log tells its changes from a person's.
REMINDER_JOB = uuid.UUID("00000000-0000-4000-8000-00000000a11e")


async def send_reminders(engine: AsyncEngine, run_id: str) -> dict:
    """Marks the appointments of the next 24 hours that were not reminded yet (the database's
    clock decides what 'next 24 hours' is) and returns how many per clinic."""
    pg_safeguard.sqlalchemy.install(engine)
    async with engine.connect() as conn:  # the clinics themselves are not tenant data
        clinics = (await conn.execute(select(Organization.id).order_by(Organization.id))).scalars().all()
    sent = {}
    for clinic in clinics:
        with pg_safeguard.request_context(tenant_id=clinic, actor_id=REMINDER_JOB, request_id=f"{run_id}:{clinic}"):
            async with engine.begin() as conn:
                due = await conn.execute(
                    update(Appointment)
                    .where(Appointment.reminded_at.is_(None),
                           Appointment.starts_at.between(func.now(), func.now() + func.make_interval(0, 0, 0, 1)))
                    .values(reminded_at=func.now())
                    .returning(Appointment.id))
                sent[clinic] = len(due.all())
    return sent
