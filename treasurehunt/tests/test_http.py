"""The HTTP handler runs each request's middleware and view in one worker thread (treasurehunt/http.py)."""

import asyncio
import json
import threading

import pytest
from asgiref.sync import AsyncToSync, SyncToAsync
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.http import JsonResponse
from django.urls import path

from treasurehunt.http import ASGIHandler

# The signals' receivers (close_old_connections) run in asgiref's one sync thread, where an earlier test may
# have left a database connection: the handler may touch the database.
pytestmark = pytest.mark.django_db

seen: dict[str, list[str]] = {"middleware": [], "view": []}
meeting = threading.Barrier(2, timeout=10)


def record_thread(get_response):
    def middleware(request):
        seen["middleware"].append(threading.current_thread().name)
        response = get_response(request)
        seen["middleware"].append(threading.current_thread().name)
        return response

    return middleware


def where(request):
    seen["view"].append(threading.current_thread().name)
    return JsonResponse({"thread": threading.current_thread().name})


def meet(request):
    meeting.wait()  # both requests must be in a view at once, or this one fails
    return JsonResponse({"met": True})


def boom(request):
    raise RuntimeError("the view failed")


urlpatterns = [path("where/", where), path("meet/", meet), path("boom/", boom)]


@pytest.fixture
def handler(settings):
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.record_thread"]
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    settings.ALLOWED_HOSTS = ["*"]  # the communicator's scope has no Host
    seen["middleware"].clear()
    seen["view"].clear()
    meeting.reset()
    return ASGIHandler()


async def get(handler, url: str) -> tuple[int, dict]:
    response = await HttpCommunicator(handler, "GET", url).get_response(timeout=15)
    return response["status"], json.loads(response["body"] or b"{}")


def test_the_chain_is_built_sync_where_djangos_is_async(settings):
    assert asyncio.iscoroutinefunction(DjangoASGIHandler()._middleware_chain)
    assert not asyncio.iscoroutinefunction(ASGIHandler()._middleware_chain)


async def test_middleware_and_view_run_in_one_worker_thread(handler):
    status, body = await get(handler, "/where/")
    assert status == 200
    assert seen["view"] == [body["thread"]]
    assert seen["middleware"] == [body["thread"]] * 2  # on the way in and on the way out
    assert body["thread"].startswith("http")  # the requests' own pool, not the live stream's


@pytest.fixture
def hops(monkeypatch):
    """Every sync_to_async and async_to_sync call: a hop between the event loop and a thread."""
    calls = []
    for cls in (SyncToAsync, AsyncToSync):
        original = cls.__call__

        def counting(self, *args, __original=original, __name=cls.__name__, **kwargs):
            calls.append(__name)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", counting)
    return calls


async def test_a_request_hops_to_a_thread_once_besides_djangos_signals(handler, hops):
    assert (await get(handler, "/where/"))[0] == 200
    # The chain with the view; besides, Django's own for the signals' sync receivers (request_started,
    # where the test run leaves any) and the response's close (request_finished).
    assert hops.count("SyncToAsync") <= 3 and "AsyncToSync" not in hops


async def test_djangos_own_handler_hops_for_every_middleware_hook(settings, hops):
    settings.ROOT_URLCONF = __name__
    settings.ALLOWED_HOSTS = ["*"]
    response = await HttpCommunicator(DjangoASGIHandler(), "GET", "/where/").get_response(timeout=15)
    assert response["status"] == 200
    assert len(hops) > 10  # what treasurehunt.http saves on every request


async def test_requests_are_served_side_by_side(handler):
    # Two requests in views at once (a pool thread each), or the barrier breaks.
    results = await asyncio.gather(get(handler, "/meet/"), get(handler, "/meet/"))
    assert results == [(200, {"met": True})] * 2


async def test_a_failing_view_is_a_500_page_not_a_crash(handler, caplog):
    response = await HttpCommunicator(handler, "GET", "/boom/").get_response(timeout=15)
    assert response["status"] == 500
    assert b"the view failed" not in response["body"]


@pytest.fixture
def threads_started(monkeypatch):
    started = []
    original = threading.Thread.start

    def start(self, *args, **kwargs):
        started.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


async def test_a_request_starts_no_thread(handler, threads_started):
    for _ in range(3):  # the first requests fill the pools (the HTTP pool's, asgiref's one sync thread)
        assert (await get(handler, "/where/"))[0] == 200
    threads_started.clear()
    for _ in range(3):
        assert (await get(handler, "/where/"))[0] == 200
    assert threads_started == []


async def test_djangos_own_context_starts_threads_for_every_request(handler, threads_started, monkeypatch):
    # What the test above guards against: Django's entry point wraps each request in a ThreadSensitiveContext.
    monkeypatch.setattr(ASGIHandler, "__call__", DjangoASGIHandler.__call__)
    for _ in range(3):
        assert (await get(handler, "/where/"))[0] == 200
    threads_started.clear()
    assert (await get(handler, "/where/"))[0] == 200
    assert len(threads_started) >= 1


async def test_a_websocket_scope_is_refused(handler):
    with pytest.raises(ValueError, match="not websocket"):
        await handler({"type": "websocket"}, None, None)
