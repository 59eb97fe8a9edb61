"""A bare Channels consumer: the floor for the live stream on the same daphne process and channel layer.

It does what the app's consumer must do at the least, and nothing else: accept, join its team's group
and one group of every bare socket, and group-send each client message to the team (the sender and its 3
teammates) or to everyone, as the same `event.forward` envelope the app uses. No authentication, no
database, no cache. Like the app's consumer it skips Channels' per-message hop to the sync thread, so
the comparison measures the app's own work rather than that hop.
"""

import json

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

ALL_GROUP = "bench.all"


def team_group(team: int) -> str:
    return f"bench.team.{team}"


class BareConsumer(AsyncWebsocketConsumer):
    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        self.team = self.scope["url_route"]["kwargs"]["team"]
        self.groups = [team_group(self.team), ALL_GROUP]  # left by the base class on disconnect
        await self.accept()
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.send(text_data=json.dumps({"type": "hello", "team": self.team}))

    async def receive(self, text_data=None, bytes_data=None):
        frame = json.loads(text_data or "{}")
        kind = frame.get("type")
        if kind == "guess.submit":
            # A GuessObject-sized frame, as the app's guess.judged.
            guess = {
                "id": 0,
                "puzzle": frame.get("puzzle"),
                "answer": frame.get("answer"),
                "status": "incorrect",
                "response": "",
                "user": None,
                "client_id": frame.get("id"),
                "created_at": None,
                "judged_at": None,
            }
            event = {"type": "guess.judged", "stream": "team", "seq": 0, "at": None, "data": {"guess": guess}}
            await self.channel_layer.group_send(
                team_group(self.team), {"type": "event.forward", "frame": event}
            )
        elif kind == "broadcast":
            event = {
                "type": "announcement.posted",
                "stream": "hunt",
                "seq": 0,
                "at": None,
                "data": {"id": 0, "text": frame.get("text")},
            }
            await self.channel_layer.group_send(ALL_GROUP, {"type": "event.forward", "frame": event})
        elif kind == "ping":
            await self.send(text_data=json.dumps({"type": "pong", "team_seq": None, "hunt_seq": None}))

    async def event_forward(self, message):
        await self.send(text_data=json.dumps(message["frame"]))
