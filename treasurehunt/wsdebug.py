"""autobahn's debug lines, their arguments built only when a line is written.

autobahn, under daphne, writes a debug line for every frame it receives and every frame it sends and for
every connection made, and builds the line's arguments before its logger drops the line (txaio's logger
writes no debug lines unless asked to): `hltype` (a method's qualified name, styled by click), `hlval`,
and, for each new connection, `pformat` of its 30-odd settings. py-spy on daphne put 5.1% of its samples
there in a 5,000-socket connect storm and 1.5% under guesses (BENCHMARKS.md, fix 27).

`install()` gives the two modules that write those lines (autobahn.websocket.protocol and
autobahn.twisted.websocket) versions of the three that return a `Later`: a placeholder whose text is
computed, the same as before, when a logger formats it. Every use of them there is a log line's argument
but one, `Timings.__str__`, which returns pformat's text itself and is given back the original.
"""

from pprint import pformat

from autobahn import util
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol

MODULES = (protocol, twisted_websocket)
HELPERS = {"hltype": util.hltype, "hlval": util.hlval, "pformat": pformat}


class Later:
    """The text of func(*args, **kwargs), computed when it is formatted (never before)."""

    __slots__ = ("func", "args", "kwargs")

    def __init__(self, func, args, kwargs):
        self.func, self.args, self.kwargs = func, args, kwargs

    def __str__(self) -> str:
        return str(self.func(*self.args, **self.kwargs))

    def __format__(self, spec: str) -> str:
        return format(self.func(*self.args, **self.kwargs), spec)

    __repr__ = __str__


def later(func):
    def deferred(*args, **kwargs):
        return Later(func, args, kwargs)

    deferred.original = func
    return deferred


def _timings_text(self) -> str:
    return pformat(self._timings)


def install() -> None:
    """Defer autobahn's debug-line arguments (idempotent)."""
    for module in MODULES:
        for name, func in HELPERS.items():
            if hasattr(module, name) and not installed_in(module, name):
                setattr(module, name, later(func))
    protocol.Timings.__str__ = _timings_text


def installed_in(module, name: str) -> bool:
    return getattr(getattr(module, name), "original", None) is HELPERS[name]


def installed() -> bool:
    return all(installed_in(module, name) for module in MODULES for name in HELPERS if hasattr(module, name))
