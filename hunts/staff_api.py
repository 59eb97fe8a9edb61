"""Staff API of a live hunt's teams and clock, under /api/hunts/<hunt>/staff/ (staff only).

Hide or show a team, rotate its join code, remove a member, move the hunt's end. Each view parses, calls one
service (hunts.operations, hunts.services) and shapes the output. Anonymous callers get 401, players 403.
"""

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import operations, services
from .api import HuntScoped, parse
from .errors import NotFound
from .selectors import team_in
from .serializers import (
    HuntEndSerializer,
    HuntScheduleSerializer,
    StaffTeamSerializer,
    TeamHiddenSerializer,
    error_responses,
)

STAFF_ERRORS = error_responses(400, 401, 403, 404)


class StaffScoped(HuntScoped):
    permission_classes = [IsAdminUser]


class TeamHiddenView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_team_hidden",
        summary="Hide a team from the rankings, or show it again (staff)",
        request=TeamHiddenSerializer,
        responses={200: StaffTeamSerializer, **STAFF_ERRORS},
        tags=["staff"],
    )
    def post(self, request, hunt, team):
        hidden = parse(TeamHiddenSerializer, request.data)["hidden"]
        updated = operations.set_team_hidden(team=team_in(self.hunt, team), hidden=hidden, staff=request.user)
        return Response(StaffTeamSerializer(updated).data)


class TeamJoinCodeView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_team_rotate_join_code",
        summary="Give a team a new join code; the old one stops working (staff)",
        request=None,
        responses={200: StaffTeamSerializer, **error_responses(401, 403, 404)},
        tags=["staff"],
    )
    def post(self, request, hunt, team):
        return Response(StaffTeamSerializer(services.rotate_join_code(team=team_in(self.hunt, team))).data)


class TeamMemberView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_team_member_remove",
        summary="Remove a member from a team (staff); the team gets member.left",
        parameters=[OpenApiParameter("username", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={204: None, **error_responses(401, 403, 404)},
        tags=["staff"],
    )
    def delete(self, request, hunt, team, username):
        found = team_in(self.hunt, team)
        user = get_user_model()._default_manager.filter(username=username, memberships__team=found).first()
        if user is None:
            raise NotFound(f"{username} is not a member of {found.name}.")
        operations.remove_member(hunt=self.hunt, user=user, staff=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HuntEndView(StaffScoped, APIView):
    @extend_schema(
        operation_id="staff_hunt_move_end",
        summary="Move the hunt's end: a new time, or by some minutes (staff); logs hunt.rescheduled",
        description="Give exactly one of ends_at and extend_minutes. The clock re-plans; an ended hunt "
        "whose end moves into the future reopens.",
        request=HuntEndSerializer,
        responses={200: HuntScheduleSerializer, **STAFF_ERRORS},
        tags=["staff"],
    )
    def post(self, request, hunt):
        data = parse(HuntEndSerializer, request.data)
        moved = operations.move_hunt_end(
            hunt=self.hunt,
            staff=request.user,
            ends_at=data.get("ends_at"),
            extend_minutes=data.get("extend_minutes"),
        )
        return Response(HuntScheduleSerializer(moved).data)
