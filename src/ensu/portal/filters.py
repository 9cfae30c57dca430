"""Jinja2 filters and globals of the portal's templates (French dates, labels)."""

from __future__ import annotations

import datetime as dt

from jinja2 import Environment

from ensu import clock
from ensu.clock import PARIS

ROLE_LABELS = {
    "reporter": "observateur",
    "instructor": "instructeur",
    "manager": "responsable",
    "admin": "administrateur",
}
STATUS_LABELS = {"active": "actif", "suspended": "suspendu", "revoked": "révoqué"}
ENVIRONMENT_LABELS = {"sandbox": "bac à sable", "production": "production"}


def french_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return "—"
    return clock.as_utc(value).astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


def french_date(value: dt.date | None) -> str:
    return value.strftime("%d/%m/%Y") if value is not None else "—"


def install(environment: Environment) -> None:
    environment.filters["datetime_fr"] = french_datetime
    environment.filters["date_fr"] = french_date
    environment.filters["role_fr"] = lambda role: ROLE_LABELS.get(str(role), str(role))
    environment.filters["status_fr"] = lambda status: STATUS_LABELS.get(str(status), str(status))
    environment.filters["environment_fr"] = lambda env: ENVIRONMENT_LABELS.get(str(env), str(env))
