"""A téléservice's three contacts, one per role (R-HAB-1, R-OPS-4), for the tests that
check who is written to."""

from __future__ import annotations

from ensu.consumers.models import ContactRole
from ensu.consumers.schemas import Contact

TECHNIQUE = "tech@org.example"
RESPONSABLE = "rt@org.example"
DPO = "dpo@org.example"


def every_role() -> list[Contact]:
    return [
        Contact(role=ContactRole.TECHNIQUE, name="Tech", email=TECHNIQUE),
        Contact(role=ContactRole.RESPONSABLE_TRAITEMENT, name="RT", email=RESPONSABLE),
        Contact(role=ContactRole.DPO, name="DPO", email=DPO),
    ]
