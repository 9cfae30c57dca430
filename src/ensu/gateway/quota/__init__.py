"""The quota of the access chain (R-Q-1): the counter and its backends.

:mod:`.counter` holds the windows, the decision and the :class:`QuotaCounter` protocol;
:mod:`.backends` chooses one of :mod:`.sqlite`, :mod:`.postgresql` or :mod:`.redis`.
"""
