"""The actor every workflow function receives (R-HAB-1, R-HAB-2)."""

from __future__ import annotations

import pytest

from ensu.accounts.principal import Actor, ActorKind, StaffRole


def test_staff_roles_are_ordered() -> None:
    assert StaffRole.INSTRUCTOR.at_least(StaffRole.REPORTER)
    assert not StaffRole.REPORTER.at_least(StaffRole.INSTRUCTOR)
    assert StaffRole.ADMIN.at_least(StaffRole.MANAGER)
    instructor = Actor(kind=ActorKind.STAFF, label="staff:1", role=StaffRole.INSTRUCTOR)
    assert instructor.is_staff(StaffRole.INSTRUCTOR)
    assert not instructor.is_staff(StaffRole.MANAGER)
    assert not instructor.acts_for("13000000000005")


def test_an_applicant_acts_for_its_organisation_only() -> None:
    applicant = Actor(kind=ActorKind.APPLICANT, label="p:1", organisation_siret="13000000000005")
    assert applicant.acts_for("13000000000005")
    assert not applicant.acts_for("21750001600019")
    assert not applicant.is_staff()
    assert not Actor.system("job:x").is_staff()


@pytest.mark.parametrize(
    "arguments",
    [
        {"kind": ActorKind.APPLICANT},
        {"kind": ActorKind.STAFF},
        {"kind": ActorKind.APPLICANT, "organisation_siret": "1", "role": StaffRole.ADMIN},
        {"kind": ActorKind.SYSTEM, "role": StaffRole.ADMIN},
    ],
)
def test_inconsistent_actors_are_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"organisation|role"):
        Actor(label="x", **arguments)  # type: ignore[arg-type]
