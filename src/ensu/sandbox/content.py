"""The body of each fictive document: labelled lines, amounts in euros (R-DATA-6).

One small builder per catalogue code. A builder draws from a PRNG seeded with the
document's IDENSUA, so a document's content depends on that document only (and the same
seed gives the same content). Amounts scale with the subject's turnover and the length of
the period; the rates are plausible, not a tax computation.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from ensu.sandbox.plan import DocumentPlan, Regime

Line = tuple[str, str]
Builder = Callable[[DocumentPlan, random.Random], list[Line]]

NBSP = "\u00a0"


def euros(amount: float) -> str:
    """French formatting: ``12 345,67 €`` (non-breaking spaces)."""
    cents = round(amount * 100)
    units = f"{cents // 100:,}".replace(",", NBSP)
    return f"{units},{cents % 100:02d}{NBSP}€"


def percent(rate: float) -> str:
    return f"{rate:.2f}".replace(".", ",") + f"{NBSP}%"


def french_date(day: dt.date) -> str:
    return day.strftime("%d/%m/%Y")


def lines(document: DocumentPlan) -> list[Line]:
    """The labelled lines of ``document``'s body."""
    # Reproducible fictive amounts, not secrets.
    rng = random.Random(document.idensua)  # noqa: S311
    return BUILDERS[document.entry.code](document, rng)


def _turnover(document: DocumentPlan, rng: random.Random) -> float:
    """The subject's turnover over the document's period, with some noise."""
    days = (document.periode_fin - document.periode_debut).days + 1
    return document.subject.chiffre_affaires * min(days, 365) / 365 * rng.uniform(0.8, 1.2)


def _vat(document: DocumentPlan, rng: random.Random) -> list[Line]:
    base = _turnover(document, rng)
    collected = base * 0.20
    deductible = collected * rng.uniform(0.35, 0.85)
    return [
        ("Chiffre d'affaires hors taxes", euros(base)),
        ("TVA collectée (20 %)", euros(collected)),
        ("TVA déductible", euros(deductible)),
        ("TVA nette due", euros(collected - deductible)),
    ]


def _corporate_tax(profit: float) -> float:
    return min(profit, 42_500) * 0.15 + max(profit - 42_500, 0) * 0.25


def _is_2065(document: DocumentPlan, rng: random.Random) -> list[Line]:
    turnover = _turnover(document, rng)
    profit = turnover * rng.uniform(0.02, 0.14)
    return [
        ("Chiffre d'affaires de l'exercice", euros(turnover)),
        ("Résultat fiscal", euros(profit)),
        ("Impôt sur les sociétés dû", euros(_corporate_tax(profit))),
    ]


def _income(document: DocumentPlan, rng: random.Random) -> list[Line]:
    """BIC 2031 and BNC 2035: receipts, expenses, profit."""
    receipts = _turnover(document, rng)
    expenses = receipts * rng.uniform(0.55, 0.9)
    labels = (
        ("Recettes encaissées", "Dépenses professionnelles", "Bénéfice non commercial")
        if document.entry.code == "BNC-2035"
        else ("Chiffre d'affaires", "Charges d'exploitation", "Résultat imposable")
    )
    amounts = (euros(receipts), euros(expenses), euros(receipts - expenses))
    return list(zip(labels, amounts, strict=True))


def _cvae(document: DocumentPlan, rng: random.Random) -> list[Line]:
    turnover = _turnover(document, rng)
    added_value = turnover * rng.uniform(0.25, 0.5)
    return [
        ("Chiffre d'affaires de référence", euros(turnover)),
        ("Valeur ajoutée produite", euros(added_value)),
        ("Taux effectif", percent(0.28)),
        ("Cotisation sur la valeur ajoutée", euros(added_value * 0.0028)),
    ]


def iban(rng: random.Random) -> str:
    """A French IBAN (valid RIB key and ISO 13616 check) at the fictive bank code 99999."""
    bank, branch, account = 99999, rng.randint(0, 99_999), rng.randint(0, 10**11 - 1)
    rib_key = 97 - (89 * bank + 15 * branch + 3 * account) % 97
    bban = f"{bank:05d}{branch:05d}{account:011d}{rib_key:02d}"
    check = 98 - int(bban + "152700") % 97  # "FR" is 15 27, followed by "00"
    digits = f"FR{check:02d}{bban}"
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _rib(document: DocumentPlan, rng: random.Random) -> list[Line]:
    return [
        ("Titulaire du compte", document.subject.denomination),
        ("IBAN", iban(rng)),
        ("BIC", "FICTFRPPXXX"),
        ("Domiciliation", "Banque fictive du bac à sable"),
    ]


def _sepa(document: DocumentPlan, rng: random.Random) -> list[Line]:
    return [
        ("Référence unique de mandat", f"RUM-{document.idensua[:12].upper()}"),
        ("Identifiant créancier SEPA", "FR00ZZZ000000 (fictif)"),
        ("IBAN du débiteur", iban(rng)),
        ("Type de prélèvement", "Récurrent, interentreprises (B2B)"),
    ]


def _regularity(document: DocumentPlan, rng: random.Random) -> list[Line]:
    return [
        ("Situation au", french_date(document.periode_fin)),
        ("Obligations déclaratives", "à jour"),
        ("Obligations de paiement", "à jour"),
        ("Montant restant dû", euros(0)),
    ]


def _claims(document: DocumentPlan, rng: random.Random) -> list[Line]:
    charged = _turnover(document, rng) * rng.uniform(0.03, 0.08)
    paid = charged * rng.choice((1.0, 1.0, 0.9, 0.75))
    surcharge = (charged - paid) * 0.05
    return [
        ("Créances prises en charge", euros(charged)),
        ("Paiements reçus", euros(paid)),
        ("Reste à recouvrer", euros(charged - paid + surcharge)),
        ("dont majorations", euros(surcharge)),
    ]


def _amr(document: DocumentPlan, rng: random.Random) -> list[Line]:
    duties = rng.uniform(500, 25_000)
    months = rng.randint(2, 18)
    interest = duties * 0.002 * months
    return [
        ("Droits rappelés", euros(duties)),
        ("Majoration (10 %)", euros(duties * 0.10)),
        (f"Intérêts de retard (0,20 % × {months} mois)", euros(interest)),
        ("Total à payer", euros(duties * 1.10 + interest)),
    ]


def _cfe(document: DocumentPlan, rng: random.Random) -> list[Line]:
    base = max(document.subject.chiffre_affaires * rng.uniform(0.004, 0.02), 600.0)
    rate = rng.uniform(18.0, 34.0)
    return [
        ("Base d'imposition", euros(base)),
        ("Taux communal et intercommunal", percent(rate)),
        ("Cotisation foncière des entreprises due", euros(base * rate / 100)),
    ]


def _instalment(document: DocumentPlan, rng: random.Random) -> list[Line]:
    reference = _corporate_tax(document.subject.chiffre_affaires * rng.uniform(0.02, 0.14))
    quarter = (document.periode_debut.month - 1) // 3 + 1
    return [
        ("Impôt de référence (exercice précédent)", euros(reference)),
        (f"Acompte n° {quarter} (25 %)", euros(reference / 4)),
    ]


def _payments(document: DocumentPlan, rng: random.Random) -> list[Line]:
    year = document.periode_debut.year
    taxes = ["TVA", "Cotisation foncière", "Taxe sur les salaires"]
    if document.subject.regime is Regime.IS:
        taxes += ["Impôt sur les sociétés", "Cotisation sur la valeur ajoutée"]
    days = sorted(rng.sample(range(365), 5))
    return [
        (
            f"{french_date(dt.date(year, 1, 1) + dt.timedelta(days=day))} — {rng.choice(taxes)}",
            euros(_turnover(document, rng) * rng.uniform(0.002, 0.02)),
        )
        for day in days
    ]


def _vat_refund(document: DocumentPlan, rng: random.Random) -> list[Line]:
    credit = rng.uniform(760, 60_000)  # 760 €: the quarterly threshold for a refund claim
    return [
        ("Crédit de TVA demandé", euros(credit)),
        ("Crédit remboursé", euros(credit * rng.choice((1.0, 1.0, 0.8)))),
    ]


def _research_credit(document: DocumentPlan, rng: random.Random) -> list[Line]:
    spending = rng.uniform(20_000, 400_000)
    return [
        ("Dépenses de recherche éligibles", euros(spending)),
        ("Crédit d'impôt recherche (30 %)", euros(spending * 0.30)),
        ("Montant remboursé", euros(spending * 0.30)),
    ]


def _vat_regime(document: DocumentPlan) -> tuple[str, str]:
    if document.subject.regime is Regime.IS:
        return "Réel normal", "mensuelle (CA3)"
    return "Réel simplifié", "annuelle (CA12)"


def _obligations(document: DocumentPlan, rng: random.Random) -> list[Line]:
    regime, frequency = _vat_regime(document)
    return [
        ("Imposition des bénéfices", str(document.subject.regime).capitalize()),
        ("Taxe sur la valeur ajoutée", f"{regime}, déclaration {frequency}"),
        ("Cotisation foncière des entreprises", "redevable"),
        ("Service gestionnaire", f"SIE de {document.subject.commune.split(' ', 1)[1]}"),
    ]


def _vat_certificate(document: DocumentPlan, rng: random.Random) -> list[Line]:
    regime, frequency = _vat_regime(document)
    return [
        ("Régime de TVA", regime),
        ("Date d'effet", french_date(dt.date(document.periode_debut.year, 1, 1))),
        ("Périodicité des déclarations", frequency),
    ]


def _accountant(document: DocumentPlan, rng: random.Random) -> list[Line]:
    end = document.periode_fin + dt.timedelta(days=3 * 365)  # not replace(): 29 February
    return [
        ("Mandataire", f"Cabinet {rng.choice(('Morel', 'Vidal', 'Caron', 'Hébert'))} (fictif)"),
        ("Étendue du mandat", "consultation des documents et dépôt des déclarations"),
        ("Date de fin du mandat", french_date(end)),
    ]


def _edi(document: DocumentPlan, rng: random.Random) -> list[Line]:
    return [
        ("Partenaire EDI", f"{rng.choice(('Télédécla', 'EDIfisc', 'Transfisco'))} (fictif)"),
        ("Numéro d'agrément", f"EDI-{rng.randint(1000, 9999)}"),
        ("Flux habilités", "TVA, résultats, paiements"),
    ]


BUILDERS: dict[str, Builder] = {
    "TVA-CA3": _vat,
    "TVA-CA12": _vat,
    "IS-2065": _is_2065,
    "BIC-2031": _income,
    "BNC-2035": _income,
    "CVAE-1330": _cvae,
    "RIB-PRO": _rib,
    "MANDAT-SEPA": _sepa,
    "ATT-REGULARITE": _regularity,
    "ETAT-CREANCES": _claims,
    "AMR": _amr,
    "AVIS-CFE": _cfe,
    "ACOMPTE-IS": _instalment,
    "HISTO-PAIEMENTS": _payments,
    "REMB-TVA-3519": _vat_refund,
    "REMB-CIR": _research_credit,
    "FICHE-OBLIG": _obligations,
    "REGIME-TVA": _vat_certificate,
    "MANDAT-EC": _accountant,
    "HABIL-EDI": _edi,
}
