"""numba's on-disk cache, made best-effort: a failed save costs start-up time next run, never this run.

Every kernel here is compiled with cache=True so later processes skip the ~50 s compile. When several
processes compiled the same kernel at once, numba's save raised inside the first call
(`AttributeError: 'NoneType' object has no attribute 'can_cache'`, seen in 2 of 3 concurrent fill-mask runs)
and took the user's command down with it, although the machine code was already built and registered
(numba adds the overload before it saves). `tolerate_cache_failures` wraps a dispatcher's cache so that such
a save is skipped with a warning instead.
"""
from __future__ import annotations

import warnings


class _BestEffortCache:
    """A numba cache whose save_overload never raises; everything else goes to the wrapped cache."""

    def __init__(self, cache):
        self._wrapped = cache

    def save_overload(self, sig, cres):
        try:
            self._wrapped.save_overload(sig, cres)
        except (AttributeError, OSError, EOFError) as err:  # what concurrent writers of one index raised
            warnings.warn(f"numba could not cache a compiled kernel ({err}); it will compile again next run",
                          RuntimeWarning, stacklevel=2)

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


def tolerate_cache_failures(*dispatchers) -> None:
    """Wrap each numba dispatcher's cache (idempotent)."""
    for dispatcher in dispatchers:
        cache = getattr(dispatcher, "_cache", None)
        if cache is not None and not isinstance(cache, _BestEffortCache):
            dispatcher._cache = _BestEffortCache(cache)
