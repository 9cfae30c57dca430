"""Fictive French denominations and addresses for the sandbox (R-DATA-6).

Word lists, not real companies: a surname and a trade, a legal form that fits the tax
regime, a street and a commune. Subjects without a SIREN get foreign-sounding names (a
foreign company with an establishment in France is a typical case for an IDSP).
"""

from __future__ import annotations

import random
from typing import NamedTuple

SURNAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
    "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David",
    "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Mercier",
    "Dupont", "Lambert", "Bonnet", "François", "Legrand", "Garnier", "Faure", "Rousseau",
    "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Perrin", "Morin", "Mathieu",
    "Clément", "Gauthier", "Fontaine", "Chevalier", "Masson", "Gérard", "Nguyen", "Boyer",
    "Lemaire", "Duval", "Joly", "Roche", "Noël", "Meyer", "Lucas", "Pérez", "Marchand",
    "Dufour", "Blanchard", "Barbier", "Brunet", "Schmitt", "Leroux", "Colin", "Benoît",
    "Hoarau", "Le Gall", "Ménard", "Lebrun", "Carpentier",
)  # fmt: skip
TRADES = {
    "IS": (
        "Transports", "Menuiserie", "Imprimerie", "Bâtiment", "Conseil", "Informatique",
        "Négoce", "Distribution", "Mécanique", "Chaudronnerie", "Logistique", "Agencement",
        "Électricité", "Laboratoires", "Emballages",
    ),
    "BIC": (
        "Boulangerie", "Boucherie", "Garage", "Épicerie", "Fleurs", "Coiffure", "Librairie",
        "Plomberie", "Traiteur", "Maçonnerie", "Crêperie", "Quincaillerie",
    ),
    "BNC": (
        "Cabinet d'architecture", "Cabinet infirmier", "Cabinet de kinésithérapie",
        "Étude", "Atelier de traduction", "Cabinet de conseil", "Cabinet dentaire",
        "Cabinet de géomètre",
    ),
}  # fmt: skip
PLACES = (
    "du Lac", "du Vieux Port", "des Trois Vallées", "de la Côte", "du Val de Loire",
    "des Monts d'Arrée", "du Causse", "de l'Étang", "des Marais", "du Pays Basque",
)  # fmt: skip
FORMS = {"IS": ("SAS", "SARL", "SA", "SASU"), "BIC": ("EI", "EURL"), "BNC": ("EI", "SELARL")}
FOREIGN_ROOTS = (
    "Nordwind", "Alpenblick", "Costa Verde", "Van Dijk", "Bellavista", "Sol y Mar",
    "Greenfield", "Lindqvist", "Oranjeboom", "Rheinland", "Tejo", "Vistula",
)  # fmt: skip
FOREIGN_FORMS = ("GmbH", "SRL", "BV", "Ltd", "SL", "AB", "Lda", "sp. z o.o.")
STREETS = (
    "rue de la République", "avenue Jean Jaurès", "boulevard Victor Hugo", "place du Marché",
    "chemin des Vignes", "impasse des Lilas", "allée des Tilleuls", "quai de Saône",
    "rue du Général de Gaulle", "rue des Écoles", "avenue de la Gare", "rue Pasteur",
    "route de Bretagne", "cours Mirabeau", "rue Émile Zola", "rue de l'Église",
)  # fmt: skip
COMMUNES = (
    "75011 Paris", "69003 Lyon", "13006 Marseille", "31000 Toulouse", "44000 Nantes",
    "67000 Strasbourg", "33000 Bordeaux", "59000 Lille", "35000 Rennes", "34000 Montpellier",
    "06000 Nice", "21000 Dijon", "37000 Tours", "63000 Clermont-Ferrand", "87000 Limoges",
    "29200 Brest", "25000 Besançon", "76000 Rouen", "57000 Metz", "64000 Pau",
    "97400 Saint-Denis", "20000 Ajaccio", "74000 Annecy", "38000 Grenoble", "49000 Angers",
    "86000 Poitiers", "51100 Reims", "80000 Amiens", "45000 Orléans", "66000 Perpignan",
)  # fmt: skip


class Company(NamedTuple):
    denomination: str
    forme_juridique: str


def company(rng: random.Random, *, regime: str, foreign: bool = False) -> Company:
    """A fictive denomination and legal form for a subject of ``regime`` (IS, BIC or BNC)."""
    if foreign:
        return Company(
            f"{rng.choice(FOREIGN_ROOTS)} {rng.choice(FOREIGN_FORMS)}", "Société étrangère"
        )
    form = rng.choice(FORMS[regime])
    surname, trade = rng.choice(SURNAMES), rng.choice(TRADES[regime])
    pattern = rng.randrange(3)
    if regime == "IS" and pattern == 0:
        return Company(f"{surname} & Fils {form}", form)
    if regime == "IS" and pattern == 1:
        return Company(f"{trade} {rng.choice(PLACES)} {form}", form)
    return Company(f"{trade} {surname}", form)


def address(rng: random.Random) -> tuple[str, str]:
    """A street line and ``code postal commune``."""
    return f"{rng.randint(1, 180)} {rng.choice(STREETS)}", rng.choice(COMMUNES)
