"""autobahn's debug-line arguments built only when a line is written (treasurehunt/wsdebug.py)."""

from pprint import pformat

import pytest
from autobahn import util
from autobahn.twisted import websocket as twisted_websocket
from autobahn.websocket import protocol
from twisted.logger import Logger, LogLevel, formatEvent

from treasurehunt import wsdebug


@pytest.fixture
def installed(monkeypatch):
    for module in wsdebug.MODULES:  # restored after the test
        for name in wsdebug.HELPERS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setattr(protocol.Timings, "__str__", protocol.Timings.__str__)
    wsdebug.install()
    wsdebug.install()  # idempotent
    assert wsdebug.installed()


def test_nothing_is_computed_until_the_text_is_asked_for():
    calls = []

    def expensive(value, *, suffix):
        calls.append(value)
        return f"{value}{suffix}"

    deferred = wsdebug.later(expensive)(7, suffix="!")
    assert calls == []
    assert f"{deferred}" == str(deferred) == repr(deferred) == "7!"
    assert format(deferred, ">4") == "  7!"
    assert calls == [7, 7, 7, 7]


def test_the_protocol_modules_get_deferred_helpers_whose_text_is_the_original(installed):
    method = protocol.WebSocketServerProtocol.sendData
    for module in wsdebug.MODULES:
        assert isinstance(module.hltype(method), wsdebug.Later)
        assert str(module.hltype(method)) == util.hltype(method)
        assert f"{module.hlval(1234)}" == util.hlval(1234)
    settings = [("autoPingInterval", 0, "WebSocketServerFactory")] * 3
    assert str(protocol.pformat(settings)) == pformat(settings)
    assert not hasattr(twisted_websocket, "pformat")  # nothing added where there was nothing


def test_timings_still_print_as_text(installed):
    timings = protocol.Timings()
    timings.track("open")
    text = str(timings)
    assert isinstance(text, str) and text == pformat(timings._timings) and "open" in text


def test_a_debug_line_that_is_written_reads_as_before(installed):
    events = []
    log = Logger(observer=events.append)
    method = protocol.WebSocketServerProtocol.sendData
    fmt = '{func} sent {data_len} bytes for peer "{peer}"'
    log.debug(fmt, func=protocol.hltype(method), data_len=protocol.hlval(42), peer=protocol.hlval("tcp:1"))
    expected = fmt.format(func=util.hltype(method), data_len=util.hlval(42), peer=util.hlval("tcp:1"))
    assert events[0]["log_level"] == LogLevel.debug
    assert formatEvent(events[0]) == expected
