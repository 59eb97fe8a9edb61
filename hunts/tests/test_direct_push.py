"""Frames handed straight to a socket by the layer (`direct`: hunts.events, treasurehunt.layers, consumer)."""

import json

import pytest
from asgiref.sync import sync_to_async
from autobahn.exception import Disconnected
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from hunts.consumers import HuntConsumer
from hunts.events import DIRECT_KINDS, envelope, hunt_group
from testing.factories import HuntFactory, MembershipFactory, TeamFactory
from treasurehunt.asgi import application
from treasurehunt.layers import PubSubChannelLayer

BOARD = {"type": "leaderboard.updated", "top": []}


def test_only_the_leaderboard_push_is_marked_direct():
    assert {"leaderboard.updated"} == DIRECT_KINDS
    assert envelope(BOARD) == {
        "type": "event.forward",
        "kind": "leaderboard.updated",
        "text": json.dumps(BOARD),
        "direct": True,
    }
    for frame in ({"type": "announcement", "seq": 3}, {"type": "presence", "online": []}):
        assert "direct" not in envelope(frame)


def consumer_sending_to(sent: list, *, fail_with: Exception | None = None) -> HuntConsumer:
    consumer = HuntConsumer()

    async def send(text_data=None, **kwargs):
        if fail_with is not None:
            raise fail_with
        sent.append(text_data)

    consumer.send = send
    return consumer


async def test_a_pushed_text_is_sent_until_the_socket_ends():
    sent = []
    consumer = consumer_sending_to(sent)
    await consumer.push_direct("one")
    consumer.closing = True
    await consumer.push_direct("two")
    assert sent == ["one"]


async def test_a_socket_closing_under_a_push_is_not_sent_more_and_nothing_is_raised():
    consumer = consumer_sending_to([], fail_with=Disconnected("closing"))
    await consumer.push_direct("one")
    assert consumer.closing


async def test_a_direct_frame_still_queued_from_before_a_direct_push_is_dropped_as_older():
    # Queued during the socket's connect (before it had a sender), then overtaken by a push handed to it.
    sent = []
    consumer = consumer_sending_to(sent)
    queued = envelope({"type": "leaderboard.updated", "top": [{"rank": 1}]})
    await consumer.event_forward(queued)  # no push handed over yet: this is the newest it has
    await consumer.push_direct('{"type": "leaderboard.updated", "top": []}')
    await consumer.event_forward(queued)
    await consumer.event_forward(envelope({"type": "announcement", "seq": 4}))  # not direct: sent
    assert [json.loads(text)["type"] for text in sent] == ["leaderboard.updated"] * 2 + ["announcement"]
    assert json.loads(sent[0])["top"] == [{"rank": 1}] and json.loads(sent[1])["top"] == []


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
async def test_a_socket_gets_a_sender_after_its_hello_and_loses_it_when_it_goes():
    layer = get_channel_layer()
    assert isinstance(layer, PubSubChannelLayer)  # the tier's layer, as in production

    def world():
        hunt = HuntFactory(slug="quay")
        team = TeamFactory(hunt=hunt)
        user = MembershipFactory(team=team, user__username="ann").user
        return hunt.pk, Token.objects.create(user=user).key

    hunt_id, token = await sync_to_async(world)()
    socket = WebsocketCommunicator(
        application,
        "/ws/hunts/quay/",
        headers=[(b"host", b"testserver"), (b"authorization", f"Token {token}".encode())],
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    hello = await socket.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    loop_layer = layer._get_layer()
    (channel,) = loop_layer.direct  # this socket's, registered once its hello was out
    assert channel in loop_layer.groups[loop_layer._get_group_channel_name(hunt_group(hunt_id))]

    await layer.group_send(hunt_group(hunt_id), envelope(BOARD))
    while (frame := await socket.receive_json_from(timeout=5))["type"] != "leaderboard.updated":
        pass
    assert frame == BOARD

    await socket.disconnect(timeout=5)
    assert loop_layer.direct == {}
