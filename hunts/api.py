"""REST API of the event and its people (DESIGN section 8): token, hunts, teams, announcements, events.

Views parse input, call one service, shape the output; services raise, hunts/api_errors.py maps.
"""

from functools import cached_property

from django.contrib.auth import authenticate
from django.db import IntegrityError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from puzzles.leaderboard import rank_of

from . import selectors, services
from .models import Announcement, Event, Hunt, Team
from .serializers import (
    RETRY_AFTER_HEADER,
    AnnouncementCreateSerializer,
    AnnouncementSerializer,
    EventFrameSerializer,
    EventQuerySerializer,
    HuntSerializer,
    TeamCreateSerializer,
    TeamDetailSerializer,
    TeamJoinSerializer,
    TeamSerializer,
    TokenRequestSerializer,
    TokenSerializer,
    error_responses,
)
from .throttling import client_address, login_attempt


class HuntScoped:
    """For views under /api/hunts/<hunt>/: the hunt as the caller may see it, and the caller's team."""

    @cached_property
    def _hunt_and_team(self) -> tuple[Hunt, Team | None]:
        request = self.request  # token authentication may have read the hunt and team already
        return services.hunt_and_team(
            slug=self.kwargs["hunt"], user=request.user, read=getattr(request, "hunt_access", None)
        )

    @cached_property
    def hunt(self) -> Hunt:
        return self._hunt_and_team[0]

    @cached_property
    def team(self) -> Team:
        """The caller's team; NotFound without one."""
        return services.team_required(self._hunt_and_team[1])

    def team_or_staff(self) -> Team | None:
        """The caller's team, or None for staff without one; NotFound for anyone else without a team."""
        return services.team_or_staff_required(self._hunt_and_team[1], self.request.user)

    def is_schema_view(self) -> bool:
        return getattr(self, "swagger_fake_view", False)


def parse(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- Auth ---------------------------------------------------------------------------------


class TokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="auth_token_create",
        summary="Exchange a username and password for the user's API token",
        description="Failed attempts are throttled per (username, address) and per address; a throttled "
        "pair gets 429 even with the right password.",
        request=TokenRequestSerializer,
        responses={200: TokenSerializer, **error_responses(400, 429)},
        parameters=[RETRY_AFTER_HEADER],
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        data = parse(TokenRequestSerializer, request.data)
        username, address = data["username"], client_address(request)
        with login_attempt(username, address) as attempt:
            user = authenticate(request, username=username, password=data["password"])
            if user is None:
                attempt.failed()
                return Response({"detail": "Wrong username or password."}, status=status.HTTP_400_BAD_REQUEST)
        try:
            token, _ = Token.objects.get_or_create(user=user)
        except IntegrityError:
            # A concurrent first login created it.
            token = Token.objects.get(user=user)
        return Response({"token": token.key})


# --- Hunts --------------------------------------------------------------------------------


class HuntListView(ListAPIView):
    serializer_class = HuntSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Hunt.objects.none()
        return selectors.hunts_for(self.request.user)

    @extend_schema(
        operation_id="hunts_list",
        summary="Hunts you can see, with your team in each",
        responses={200: HuntSerializer, **error_responses(401, 404)},
        tags=["hunts"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class HuntDetailView(APIView):
    @extend_schema(
        operation_id="hunts_retrieve",
        summary="One hunt, with your team in it",
        responses={200: HuntSerializer, **error_responses(401, 404)},
        tags=["hunts"],
    )
    def get(self, request, hunt):
        found = selectors.hunts_for(request.user).filter(slug=hunt).first()
        if found is None:
            raise services.no_such_hunt(hunt)
        return Response(HuntSerializer(found).data)


# --- Teams --------------------------------------------------------------------------------


def team_body(team: Team, hunt: Hunt) -> dict:
    members = [{"username": name} for name in selectors.member_names(team)]
    return {
        "slug": team.slug,
        "name": team.name,
        "join_code": team.join_code,
        "members": members,
        "score": team.score,
        "rank": rank_of(hunt, team),
        "solves": team.solve_count,
    }


class TeamCreateView(HuntScoped, APIView):
    @extend_schema(
        operation_id="teams_create",
        summary="Create a team; you become its first member",
        request=TeamCreateSerializer,
        responses={201: TeamSerializer, **error_responses(400, 401, 403, 404)},
        tags=["teams"],
    )
    def post(self, request, hunt):
        data = parse(TeamCreateSerializer, request.data)
        team = services.create_team(hunt=self.hunt, user=request.user, name=data["name"])
        return Response(TeamSerializer(team_body(team, self.hunt)).data, status=status.HTTP_201_CREATED)


class TeamJoinView(HuntScoped, APIView):
    @extend_schema(
        operation_id="teams_join",
        summary="Join a team with its join code",
        description="A full team, or being on another team of this hunt already, is 400.",
        request=TeamJoinSerializer,
        responses={200: TeamSerializer, **error_responses(400, 401, 403, 404)},
        tags=["teams"],
    )
    def post(self, request, hunt):
        data = parse(TeamJoinSerializer, request.data)
        team = services.join_team(hunt=self.hunt, user=request.user, join_code=data["join_code"])
        return Response(TeamSerializer(team_body(team, self.hunt)).data)


class TeamLeaveView(HuntScoped, APIView):
    @extend_schema(
        operation_id="team_leave",
        summary="Leave your team",
        request=None,
        responses={204: None, **error_responses(401, 404)},
        tags=["teams"],
    )
    def post(self, request, hunt):
        services.leave_team(hunt=self.hunt, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamView(HuntScoped, APIView):
    @extend_schema(
        operation_id="team_retrieve",
        summary="Your team (404 without one)",
        responses={200: TeamDetailSerializer, **error_responses(401, 404)},
        tags=["teams"],
    )
    def get(self, request, hunt):
        return Response(TeamDetailSerializer(team_body(self.team, self.hunt)).data)


# --- Announcements and events -----------------------------------------------------------------


class AnnouncementListView(HuntScoped, ListAPIView):
    serializer_class = AnnouncementSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return Announcement.objects.none()
        self.team_or_staff()  # team members and staff only
        return selectors.announcements_of(self.hunt)

    @extend_schema(
        operation_id="announcements_list",
        summary="The hunt's announcements, newest first (team members and staff)",
        responses={200: AnnouncementSerializer, **error_responses(401, 404)},
        tags=["announcements"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="announcements_create",
        summary="Post an announcement to every player (staff only)",
        request=AnnouncementCreateSerializer,
        responses={201: AnnouncementSerializer, **error_responses(400, 401, 403, 404)},
        tags=["announcements"],
    )
    def post(self, request, hunt):
        data = parse(AnnouncementCreateSerializer, request.data)
        announcement = services.post_announcement(hunt=self.hunt, text=data["text"], user=request.user)
        return Response(AnnouncementSerializer(announcement).data, status=status.HTTP_201_CREATED)


SEQ_PARAMETERS = [
    OpenApiParameter(
        name,
        OpenApiTypes.INT,
        OpenApiParameter.QUERY,
        description=f"Frames of the {stream} stream with a seq above this (0 = from the start); "
        "at most the stream's head. Neither seq given: both streams from the start.",
    )
    for name, stream in (("team_seq", "team"), ("hunt_seq", "hunt"))
]


class EventListView(HuntScoped, ListAPIView):
    serializer_class = EventFrameSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return Event.objects.none()
        given = {
            k: v for k, v in self.request.query_params.items() if k in ("team_seq", "hunt_seq") and v != ""
        }
        seqs = parse(EventQuerySerializer, given)
        return selectors.events_after(
            hunt=self.hunt,
            team=self.team_or_staff(),
            team_seq=seqs.get("team_seq"),
            hunt_seq=seqs.get("hunt_seq"),
        )

    @extend_schema(
        operation_id="events_list",
        summary="Logged frames after the given seqs, hunt stream first (the WebSocket resume, paginated)",
        description="Staff without a team get the hunt stream only. A seq above its stream's head is 400.",
        parameters=SEQ_PARAMETERS,
        responses={200: EventFrameSerializer, **error_responses(400, 401, 404)},
        tags=["events"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- Spectators ------------------------------------------------------------------------------------


class PublicEventQuerySerializer(EventQuerySerializer):
    team_seq = None  # spectators have no team stream


class PublicEventListView(HuntScoped, ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = EventFrameSerializer

    def get_queryset(self):
        if self.is_schema_view():
            return Event.objects.none()
        given = {k: v for k, v in self.request.query_params.items() if k == "hunt_seq" and v != ""}
        hunt_seq = parse(PublicEventQuerySerializer, given).get("hunt_seq", 0)
        return selectors.public_events_after(hunt=self.hunt, hunt_seq=hunt_seq)

    @extend_schema(
        operation_id="public_events_list",
        summary="The hunt stream's public events: announcements, treasure claims, start, end (public)",
        description="No credentials needed (a bad token is still 401). Frames as on the WebSocket, in seq "
        "order; seqs skip the hunt-stream kinds that are not public (errata, clues), so a gap here is "
        "not a loss. A hunt_seq above the stream's head is 400.",
        parameters=[SEQ_PARAMETERS[1]],
        responses={200: EventFrameSerializer, **error_responses(400, 401, 404)},
        auth=[],
        tags=["spectators"],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
