"""The ``ensu`` command: one Typer app, one module per feature."""

from __future__ import annotations

import typer

from ensu.cli import (
    alerts,
    availability,
    backup,
    breaches,
    calendar,
    compliance,
    consumers,
    db,
    documents,
    edge,
    habilitations,
    incidents,
    jobs,
    journal,
    keys,
    maintenance,
    pki,
    sandbox,
    serve,
    staff,
    webhooks,
)

app = typer.Typer(
    name="ensu",
    help="ENSU Documents: administration commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(documents.app, name="documents")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(pki.app, name="pki")
app.add_typer(consumers.app, name="consumers")
app.add_typer(habilitations.app, name="habilitations")
app.add_typer(keys.app, name="keys")
app.add_typer(journal.app, name="journal")
app.add_typer(edge.app, name="edge")
app.add_typer(maintenance.app, name="maintenance")
app.add_typer(availability.app, name="availability")
app.add_typer(jobs.app, name="jobs")
app.add_typer(calendar.app, name="calendar")
app.add_typer(compliance.app, name="compliance")
app.add_typer(staff.app, name="staff")
app.add_typer(staff.portal_app, name="portal")
app.add_typer(backup.app, name="backup")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(alerts.app, name="alerts")
app.add_typer(incidents.app, name="incidents")
app.add_typer(breaches.app, name="breaches")
app.command("serve")(serve.serve)


def main() -> None:
    app()
