"""The clinic's HTTP API as a plain WSGI application (any framework does the same in its
middleware): each request runs inside pg_safeguard.request_context, so every transaction it opens
starts with the request's clinic, user and request id, and the database enforces the rest.

Here the clinic and the user come from headers, to keep the example free of an identity
provider; a real service takes them from its verified session or token.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, List, Tuple

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

import pg_safeguard
from pg_safeguard.sqlalchemy import history

from .models import Appointment, Patient

Response = Tuple[str, Any]


def _status_of(error: DBAPIError) -> str:
    """HTTP status of a database refusal, by SQLSTATE."""
    sqlstate = getattr(error.orig, "sqlstate", "") or ""
    if sqlstate == "42501":  # row-level security or a privilege: not this clinic's to write
        return "403 Forbidden"
    if sqlstate.startswith("23"):  # a rule: unique, order, a key to another clinic's row
        return "409 Conflict"
    return "500 Internal Server Error"


class ClinicApp:
    def __init__(self, engine: Engine) -> None:
        self.engine = pg_safeguard.sqlalchemy.install(engine)
        self.routes: Dict[Tuple[str, str], Callable[..., Response]] = {
            ("GET", "patients"): self.list_patients,
            ("POST", "patients"): self.create_patient,
            ("POST", "appointments"): self.book_appointment,
            ("GET", "history"): self.patient_history,
        }

    def __call__(self, environ: Dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        method, parts = environ["REQUEST_METHOD"], [p for p in environ.get("PATH_INFO", "").split("/") if p]
        handler = self.routes.get((method, parts[-1] if parts else ""))
        if handler is None:
            status, body = "404 Not Found", {"error": "no such route"}
        else:
            try:
                with pg_safeguard.request_context(
                    tenant_id=environ.get("HTTP_X_ORGANIZATION_ID") or None,
                    actor_id=environ.get("HTTP_X_USER_ID") or None,
                    request_id=environ.get("HTTP_X_REQUEST_ID") or str(uuid.uuid4()),
                ):
                    status, body = handler(parts[:-1], _json_body(environ))
            except ValueError as error:  # a malformed id in a header or the body
                status, body = "400 Bad Request", {"error": str(error)}
            except DBAPIError as error:
                status, body = _status_of(error), {"error": str(error.orig).splitlines()[0]}
        payload = json.dumps(body, default=str).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]

    def list_patients(self, _: List[str], __: Dict[str, Any]) -> Response:
        with Session(self.engine) as session:
            patients = session.scalars(select(Patient).order_by(Patient.full_name)).all()
            return "200 OK", [{"id": p.id, "full_name": p.full_name} for p in patients]

    def create_patient(self, _: List[str], body: Dict[str, Any]) -> Response:
        context = pg_safeguard.current_context()
        with Session(self.engine) as session, session.begin():
            patient = Patient(organization_id=context.tenant_id if context else None, full_name=body["full_name"],
                              medical_history=body.get("medical_history"))
            session.add(patient)
            session.flush()
            return "201 Created", {"id": patient.id}

    def book_appointment(self, _: List[str], body: Dict[str, Any]) -> Response:
        context = pg_safeguard.current_context()
        with Session(self.engine) as session, session.begin():
            appointment = Appointment(
                organization_id=context.tenant_id if context else None,
                patient_id=uuid.UUID(body["patient_id"]), provider_id=uuid.UUID(body["provider_id"]),
                starts_at=datetime.fromisoformat(body["starts_at"]), ends_at=datetime.fromisoformat(body["ends_at"]))
            session.add(appointment)
            session.flush()
            return "201 Created", {"id": appointment.id}

    def patient_history(self, path: List[str], _: Dict[str, Any]) -> Response:
        """GET /patients/<id>/history: the patient's audit entries (who, when, what changed)."""
        with Session(self.engine) as session:
            patient = session.get(Patient, uuid.UUID(path[-1]))
            if patient is None:  # another clinic's patient is as absent as a missing one
                return "404 Not Found", {"error": "no such patient"}
            return "200 OK", [{"operation": e.operation, "actor_id": e.actor_id, "request_id": e.request_id,
                               "changed_columns": e.changed_columns} for e in history(session, patient)]


def _json_body(environ: Dict[str, Any]) -> Dict[str, Any]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return json.loads(environ["wsgi.input"].read(length)) if length else {}
