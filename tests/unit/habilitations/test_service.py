"""The habilitation requests' service: blocks, stages, decisions, provisioning through
consumers.service (R-HAB-1 to R-HAB-4, R-SEC-1), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit.models import Event
from ensu.clock import legal_date
from ensu.compliance import service as compliance
from ensu.config import Environment, Settings
from ensu.consumers import service as consumers
from ensu.consumers.models import ContactRole, TeleserviceStatus
from ensu.habilitations import service as habilitations
from ensu.habilitations.errors import (
    ActionForbidden,
    AttachmentRefused,
    InvalidRequestData,
    TransitionRefused,
)
from ensu.habilitations.storage import AttachmentStore
from ensu.pki import service as pki
from tests.support.habilitations import (
    ANALYSIS,
    APPLICANT,
    INSTRUCTOR,
    MANAGER,
    PDF,
    filled_request,
    production_blocks,
    submit_and_validate,
    submitted_request,
    validated_request,
)

pytestmark = pytest.mark.anyio


async def _tags(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(Event.tag).order_by(Event.id)))


async def _fill_production(
    session: AsyncSession,
    settings: Settings,
    request_id: int,
    *,
    start: dt.date,
    **blocks: dict[str, object],
) -> None:
    """The homologation attached and every production block saved (R-HAB-3, R-SEC-1)."""
    homologation = await habilitations.attach(
        session=session,
        settings=settings,
        actor=APPLICANT,
        request_id=request_id,
        kind="homologation",
        filename="homologation.pdf",
        content=PDF,
    )
    filled = production_blocks(homologation_sha256=homologation.sha256, start=start)
    for key, values in {**filled, **blocks}.items():
        await habilitations.save_block(
            session=session, actor=APPLICANT, request_id=request_id, block=key, values=values
        )


async def test_sandbox_request_from_draft_to_provisioned_teleservice(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """Submit, changes asked with a reason, amended, resubmitted, validated: the sandbox
    téléservice exists with the request's perimeter, allowlist and contacts (R-HAB-4)."""
    async with sessionmaker() as session, session.begin():
        view = await submitted_request(session, settings)
        assert view.state == "submitted"
        view = await habilitations.request_changes(
            session=session, actor=INSTRUCTOR, request_id=view.id, reason="Précisez l'usage."
        )
        assert view.state == "changes_requested"
        await habilitations.save_block(
            session=session,
            actor=APPLICANT,
            request_id=view.id,
            block="perimetre",
            values={
                "familles": ["paiements"],
                "periode_debut": "2021-01-01",
                "periode_fin": "2025-12-31",
            },
        )
        decision = await submit_and_validate(session, settings, view.id)
    snapshot = decision.habilitation
    assert (snapshot.status, snapshot.stage) == ("active", Environment.SANDBOX)
    assert decision.notice.to == ("tess@example.fr",)
    assert snapshot.id_teleservice in decision.notice.body
    assert snapshot.client_id in decision.notice.body
    async with sessionmaker() as session:
        teleservice = await consumers.get_by_id_teleservice(
            session=session, id_teleservice=snapshot.id_teleservice
        )
        assert teleservice is not None
        assert teleservice.environment is Environment.SANDBOX
        assert teleservice.families == frozenset({"paiements"})
        assert (teleservice.period_start, teleservice.period_end) == (
            dt.date(2021, 1, 1),
            dt.date(2025, 12, 31),
        )
        assert teleservice.quota_per_minute == 50
        contacts = await consumers.contacts_of(
            session=session, id_teleservice=snapshot.id_teleservice
        )
        assert {c.role: c.email for c in contacts} == {
            ContactRole.TECHNIQUE: "tess@example.fr",
            ContactRole.RESPONSABLE_TRAITEMENT: "rose@example.fr",
            ContactRole.DPO: "denis@example.fr",
        }
        timeline = await habilitations.timeline(
            session=session, actor=APPLICANT, request_id=view.id
        )
        transitions = [
            (e.action, e.from_state, e.to_state) for e in timeline if e.from_state != e.to_state
        ]
        assert transitions[-4:] == [
            ("submit", "draft", "submitted"),
            ("request_changes", "submitted", "changes_requested"),
            ("submit", "changes_requested", "submitted"),
            ("validate", "submitted", "validated"),
        ]
        asked = next(e for e in timeline if e.action == "request_changes")
        assert (asked.reason, asked.actor_label) == ("Précisez l'usage.", INSTRUCTOR.label)
        validated = next(e for e in timeline if e.action == "validate")
        assert validated.legal_analysis == ANALYSIS
        tags = await _tags(session)
    assert "habilitations:request:validated" in tags
    assert "consumers:teleservice:created" in tags


async def test_production_stage_keeps_the_sandbox_data_and_adds_its_blocks(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """R-HAB-3: started from the validated sandbox request, keeps its data and
    attachments, needs recette, security commitment, legal texts, production date."""
    pki.init(directory=settings.pki_dir_path)
    ca = settings.pki_dir_path
    pki.issue_client(directory=ca, name="prod-client")
    trusted_pem = pki.PkiLayout(ca).client_cert("prod-client").read_text()
    today = legal_date(dt.datetime.now(dt.UTC))
    async with sessionmaker() as session, session.begin():
        sandbox = await validated_request(session, settings)
        production = await habilitations.start_next_stage(
            session=session, actor=APPLICANT, request_id=sandbox.id
        )
        assert production.stage is Environment.PRODUCTION
        assert production.previous_stage_id == sandbox.id
        assert production.data["informations"] == sandbox.data["informations"]
        assert set(production.missing_blocks) == {
            "recette",
            "engagement_securite",
            "textes_juridiques",
            "mise_en_production",
            "cgu",
        }
        with pytest.raises(TransitionRefused):
            await habilitations.start_next_stage(
                session=session, actor=APPLICANT, request_id=sandbox.id
            )
        with pytest.raises(InvalidRequestData) as missing:
            await habilitations.submit(
                session=session, settings=settings, actor=APPLICANT, request_id=production.id
            )
        assert "recette" in missing.value.errors
        await _fill_production(session, settings, production.id, start=today)
        # The self-signed sandbox certificate is not from a trusted CA: refused in production.
        with pytest.raises(InvalidRequestData) as untrusted:
            await habilitations.submit(
                session=session, settings=settings, actor=APPLICANT, request_id=production.id
            )
        assert "autorité reconnue" in untrusted.value.errors["acces_technique.certificat_pem"]
        access = dict(production.data["acces_technique"], certificat_pem=trusted_pem)
        await habilitations.save_block(
            session=session,
            actor=APPLICANT,
            request_id=production.id,
            block="acces_technique",
            values=access,
        )
        decision = await submit_and_validate(session, settings, production.id)
    async with sessionmaker() as session:
        teleservice = await consumers.get_by_id_teleservice(
            session=session, id_teleservice=decision.habilitation.id_teleservice
        )
    assert teleservice is not None
    assert teleservice.environment is Environment.PRODUCTION
    assert teleservice.quota_per_minute == 500
    assert teleservice.valid_from == today
    assert teleservice.id_teleservice != sandbox.id_teleservice
    async with sessionmaker() as session:
        commitment = await habilitations.security_commitment(
            session=session, id_teleservice=teleservice.id_teleservice
        )
        assert (
            await habilitations.security_commitment(
                session=session, id_teleservice=sandbox.id_teleservice or ""
            )
            is None
        )
    assert commitment is not None
    assert commitment.homologation is not None
    assert commitment.homologation.autorite_nom == "Claire Autorité"
    # The compliance clock watches it from the validation on (R-SEC-2): renewal due
    # 3 months before the homologation ends.
    async with sessionmaker() as session:
        watched = await compliance.commitment_in_force(
            session=session, id_teleservice=teleservice.id_teleservice
        )
    assert watched is not None
    assert watched.kind is compliance.CommitmentKind.HOMOLOGATION
    assert watched.reference_date == commitment.homologation.date_fin
    assert watched.deadline == compliance.deadline_of(
        compliance.CommitmentKind.HOMOLOGATION, commitment.homologation.date_fin
    )


async def test_production_volumetry_above_500_is_the_instructor_s_recorded_decision(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """R-Q-2: the request's justification and the validating instructor as decider."""
    pki.init(directory=settings.pki_dir_path)
    pki.issue_client(directory=settings.pki_dir_path, name="prod-client")
    trusted_pem = pki.PkiLayout(settings.pki_dir_path).client_cert("prod-client").read_text()
    today = legal_date(dt.datetime.now(dt.UTC))
    async with sessionmaker() as session, session.begin():
        sandbox = await validated_request(session, settings)
        production = await habilitations.start_next_stage(
            session=session, actor=APPLICANT, request_id=sandbox.id
        )
        volumetry = {
            "appels_par_minute": 1200,
            "pics_de_charge": "campagne de mai",
            "nombre_dossiers": 40000,
            "periodicite": "annuelle",
        }
        access = dict(production.data["acces_technique"], certificat_pem=trusted_pem)
        await _fill_production(
            session,
            settings,
            production.id,
            start=today,
            volumetrie=volumetry,
            acces_technique=access,
        )
        decision = await submit_and_validate(session, settings, production.id)
    async with sessionmaker() as session:
        teleservice = await consumers.get_by_id_teleservice(
            session=session, id_teleservice=decision.habilitation.id_teleservice
        )
        assert teleservice is not None
        assert teleservice.quota_per_minute == 1200
        from ensu.consumers import quota as quotas  # noqa: PLC0415

        history = await quotas.quota_history(
            session=session, id_teleservice=teleservice.id_teleservice
        )
    assert history[-1].decided_by == INSTRUCTOR.label


async def test_revocation_revokes_the_teleservice_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        view = await validated_request(session, settings)
        with pytest.raises(TransitionRefused, match="motif"):
            await habilitations.revoke(
                session=session, actor=MANAGER, request_id=view.id, reason=" "
            )
        with pytest.raises(ActionForbidden):
            await habilitations.revoke(
                session=session, actor=INSTRUCTOR, request_id=view.id, reason="fin"
            )
        view = await habilitations.revoke(
            session=session, actor=MANAGER, request_id=view.id, reason="Fin de la base légale."
        )
        (snapshot,) = await habilitations.list_habilitations(
            session=session, actor=MANAGER, request_id=view.id
        )
    assert view.state == "revoked"
    assert snapshot.status == "revoked"
    async with sessionmaker() as session:
        teleservice = await consumers.get_by_id_teleservice(
            session=session, id_teleservice=snapshot.id_teleservice
        )
    assert teleservice is not None
    assert teleservice.status is TeleserviceStatus.REVOKED


async def test_reopening_updates_the_same_teleservice_and_obsoletes_the_snapshot(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        view = await validated_request(session, settings)
        first = view.id_teleservice
        view = await habilitations.reopen(session=session, actor=APPLICANT, request_id=view.id)
        assert (view.state, view.has_active_habilitation) == ("draft", True)
        await habilitations.save_block(
            session=session,
            actor=APPLICANT,
            request_id=view.id,
            block="acces_technique",
            values=dict(view.data["acces_technique"], reseaux=["10.1.0.0/16"]),
        )
        await submit_and_validate(session, settings, view.id)
        snapshots = await habilitations.list_habilitations(
            session=session, actor=APPLICANT, request_id=view.id
        )
    assert [s.status for s in snapshots] == ["active", "obsolete"]
    assert snapshots[1].data["acces_technique"]["reseaux"] == ["127.0.0.0/8", "::1/128"]
    assert {s.id_teleservice for s in snapshots} == {first}
    async with sessionmaker() as session:
        teleservice = await consumers.get_by_id_teleservice(
            session=session, id_teleservice=first or ""
        )
    assert teleservice is not None
    assert [str(n) for n in teleservice.networks] == ["10.1.0.0/16"]


async def test_cancel_reopening_restores_the_validated_data(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        view = await validated_request(session, settings)
        before = view.data
        await habilitations.reopen(session=session, actor=APPLICANT, request_id=view.id)
        await habilitations.save_block(
            session=session,
            actor=APPLICANT,
            request_id=view.id,
            block="volumetrie",
            values={"appels_par_minute": 10},
        )
        view = await habilitations.cancel_reopening(
            session=session, actor=APPLICANT, request_id=view.id
        )
    assert view.state == "validated"
    assert view.data == before


async def test_client_secret_is_read_once_and_never_mailed(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """R-HAB-4: with client_secret_basic, a secret the applicant reads once."""
    async with sessionmaker() as session, session.begin():
        view = await filled_request(session)
        access = dict(view.data["acces_technique"], methode_authentification="client_secret_basic")
        await habilitations.save_block(
            session=session,
            actor=APPLICANT,
            request_id=view.id,
            block="acces_technique",
            values=access,
        )
        decision = await submit_and_validate(session, settings, view.id)
    assert decision.habilitation.secret_pending
    async with sessionmaker() as session, session.begin():
        secret = await habilitations.reveal_secret(
            session=session,
            settings=settings,
            actor=APPLICANT,
            habilitation_id=decision.habilitation.id,
        )
    assert secret not in decision.notice.body
    async with sessionmaker() as session, session.begin():
        with pytest.raises(TransitionRefused):
            await habilitations.reveal_secret(
                session=session,
                settings=settings,
                actor=APPLICANT,
                habilitation_id=decision.habilitation.id,
            )
        teleservice = await consumers.get_by_client_id(
            session=session, client_id=decision.habilitation.client_id
        )
    assert await consumers.check_client_secret(teleservice, secret)


async def test_a_csr_is_signed_by_the_development_ca_in_the_sandbox(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    pki.init(directory=settings.pki_dir_path)
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "demandeur")]))
        .sign(key, hashes.SHA256())
    )
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    async with sessionmaker() as session, session.begin():
        view = await filled_request(
            session, acces_technique={"csr_pem": csr_pem, "reseaux": ["127.0.0.1/32"]}
        )
        decision = await submit_and_validate(session, settings, view.id)
    assert decision.issued_certificate_pem is not None
    issued = x509.load_pem_x509_certificate(decision.issued_certificate_pem.encode())
    ca = pki.load_certificate(path=pki.PkiLayout(settings.pki_dir_path).ca_cert)
    issued.verify_directly_issued_by(ca)
    assert issued.public_key() == key.public_key()
    assert decision.issued_certificate_pem in decision.notice.body


async def test_attachments_are_pdfs_stored_0600_with_their_sha256(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        view = await habilitations.create_request(
            session=session, actor=APPLICANT, organisation_name="Région"
        )
        for bad, message in ((b"GIF89a....", "PDF"), (b"", "vide")):
            with pytest.raises(AttachmentRefused, match=message):
                await habilitations.attach(
                    session=session,
                    settings=settings,
                    actor=APPLICANT,
                    request_id=view.id,
                    kind="cadre_juridique",
                    filename="x.pdf",
                    content=bad,
                )
        with pytest.raises(AttachmentRefused, match="Mo"):
            await habilitations.attach(
                session=session,
                settings=settings,
                actor=APPLICANT,
                request_id=view.id,
                kind="cadre_juridique",
                filename="x.pdf",
                content=PDF + b"0" * (10 * 1024 * 1024),
            )
        stored = await habilitations.attach(
            session=session,
            settings=settings,
            actor=APPLICANT,
            request_id=view.id,
            kind="cadre_juridique",
            filename="../../loi.pdf",
            content=PDF,
        )
        assert "/" not in stored.filename
        with pytest.raises(InvalidRequestData) as unknown:
            await habilitations.save_block(
                session=session,
                actor=APPLICANT,
                request_id=view.id,
                block="cadre_juridique",
                values={"nature": "Loi", "document": "0" * 64},
            )
        assert unknown.value.errors == {"cadre_juridique.document": "joignez d'abord ce PDF"}
        await habilitations.save_block(
            session=session,
            actor=APPLICANT,
            request_id=view.id,
            block="cadre_juridique",
            values={"nature": "Loi", "document": stored.sha256},
        )
        _, content = await habilitations.read_attachment(
            session=session,
            settings=settings,
            actor=INSTRUCTOR,
            request_id=view.id,
            sha256=stored.sha256,
        )
    assert content == PDF
    path = AttachmentStore.for_settings(settings).path_for(stored.sha256)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    path.write_bytes(PDF + b"altered")
    async with sessionmaker() as session:
        with pytest.raises(AttachmentRefused, match="altérée"):
            await habilitations.read_attachment(
                session=session,
                settings=settings,
                actor=APPLICANT,
                request_id=view.id,
                sha256=stored.sha256,
            )


async def test_an_incomplete_request_cannot_be_submitted(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        view = await habilitations.create_request(
            session=session, actor=APPLICANT, organisation_name="Région"
        )
        with pytest.raises(InvalidRequestData) as refused:
            await habilitations.submit(
                session=session, settings=settings, actor=APPLICANT, request_id=view.id
            )
    assert refused.value.errors["contacts"] == "bloc « Contacts » à remplir"


async def test_messages_go_to_the_timeline(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        view = await submitted_request(session, settings)
        await habilitations.post_message(
            session=session, actor=INSTRUCTOR, request_id=view.id, body="Quel service ?"
        )
        await habilitations.post_message(
            session=session, actor=APPLICANT, request_id=view.id, body="Le service des aides."
        )
        entries = await habilitations.timeline(session=session, actor=APPLICANT, request_id=view.id)
    messages = [(e.actor_label, e.body) for e in entries if e.kind == "message"]
    assert messages == [
        (INSTRUCTOR.label, "Quel service ?"),
        (APPLICANT.label, "Le service des aides."),
    ]


async def test_the_queue_filters_by_state_and_stage(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessionmaker() as session, session.begin():
        draft = await filled_request(session)
        submitted = await submitted_request(session, settings)
        queue = await habilitations.list_requests(
            session=session, actor=INSTRUCTOR, state=habilitations.State.SUBMITTED
        )
        everything = await habilitations.list_requests(
            session=session, actor=INSTRUCTOR, stage=Environment.SANDBOX, text="fictive"
        )
    assert [v.id for v in queue] == [submitted.id]
    assert [v.id for v in everything] == [submitted.id, draft.id]
