"""The compliance clock: the terms' dates enforced by the software.

CGU §3.4, §6.8, §9.3, §13, §14; see :mod:`ensu.compliance.service` and
:mod:`ensu.compliance.jobs`.
"""
