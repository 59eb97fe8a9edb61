"""The staff live view's controls: one POST per control, each calling one service, then back to the view.

Controls: unlock / re-lock a puzzle, adjust a score, hide / show a team, rotate a join code, remove a member,
move the end, post an erratum; and the re-judge page (GET previews, POST applies). Outcomes and refusals
show as messages on the live view.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from puzzles import operations as puzzle_operations
from puzzles.models import Puzzle

from . import operations, services
from .admin import SERVICE_ERRORS, error_message
from .models import Hunt
from .selectors import team_in
from .staff_forms import (
    ErratumForm,
    MoveEndForm,
    PuzzleTeamForm,
    RemoveMemberForm,
    ScoreAdjustForm,
    TeamOnlyForm,
)
from .web import hunt_page, staff_required


def _valid(form: forms.Form) -> dict:
    if not form.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
            for name, errors in form.errors.items()
        )
        raise ValidationError(problems)
    return form.cleaned_data


def _puzzle(hunt: Hunt, slug: str) -> Puzzle:
    puzzle = Puzzle.objects.filter(hunt=hunt, slug=slug).select_related("round").first()
    if puzzle is None:
        raise ValidationError(f"No puzzle '{slug}' in this hunt.")
    puzzle.hunt = hunt
    return puzzle


def _unlock(request, hunt: Hunt) -> str:
    data = _valid(PuzzleTeamForm(request.POST))
    puzzle = _puzzle(hunt, data["puzzle"])
    team = team_in(hunt, data["team"]) if data["team"] else None
    count = puzzle_operations.unlock_puzzle(puzzle=puzzle, staff=request.user, team=team)
    return f"{puzzle.title} unlocked for {team.name if team else 'every team'}: {count} team(s) newly see it."


def _lock(request, hunt: Hunt) -> str:
    data = _valid(PuzzleTeamForm(request.POST))
    puzzle = _puzzle(hunt, data["puzzle"])
    team = team_in(hunt, data["team"]) if data["team"] else None
    count = puzzle_operations.lock_puzzle(puzzle=puzzle, staff=request.user, team=team)
    who = team.name if team else "every team that has not solved it"
    return f"{puzzle.title} re-locked for {who}: hidden from {count} team(s)."


def _adjust(request, hunt: Hunt) -> str:
    data = _valid(ScoreAdjustForm(request.POST))
    team = team_in(hunt, data["team"])
    adjustment = puzzle_operations.adjust_score(
        team=team, points=data["points"], reason=data["reason"], staff=request.user
    )
    return f"{adjustment.points:+d} points for {team.name} (now {adjustment.team.score})."


def _hidden(hidden: bool):
    def control(request, hunt: Hunt) -> str:
        team = team_in(hunt, _valid(TeamOnlyForm(request.POST))["team"])
        operations.set_team_hidden(team=team, hidden=hidden, staff=request.user)
        return f"{team.name} is {'hidden from' if hidden else 'shown in'} the rankings."

    return control


def _rotate(request, hunt: Hunt) -> str:
    team = team_in(hunt, _valid(TeamOnlyForm(request.POST))["team"])
    rotated = services.rotate_join_code(team=team)
    return f"New join code for {team.name}: {rotated.join_code}."


def _remove_member(request, hunt: Hunt) -> str:
    username = _valid(RemoveMemberForm(request.POST))["username"].strip()
    user = get_user_model()._default_manager.filter(username=username).first()
    if user is None:
        raise ValidationError(f"No user named {username}.")
    team = operations.remove_member(hunt=hunt, user=user, staff=request.user)
    return f"{username} was removed from {team.name}."


def _move_end(request, hunt: Hunt) -> str:
    data = _valid(MoveEndForm(request.POST))
    moved = operations.move_hunt_end(
        hunt=hunt, staff=request.user, ends_at=data["ends_at"], extend_minutes=data["extend_minutes"]
    )
    return f"The hunt now ends {moved.ends_at:%a %d %b %H:%M} UTC."


def _erratum(request, hunt: Hunt) -> str:
    data = _valid(ErratumForm(request.POST))
    puzzle = _puzzle(hunt, data["puzzle"])
    puzzle_operations.post_erratum(puzzle=puzzle, text=data["text"], staff=request.user)
    return f"Erratum posted on {puzzle.title}."


CONTROLS = {
    "unlock": _unlock,
    "lock": _lock,
    "adjust-score": _adjust,
    "hide": _hidden(True),
    "unhide": _hidden(False),
    "rotate-join-code": _rotate,
    "remove-member": _remove_member,
    "move-end": _move_end,
    "erratum": _erratum,
}


def _back(hunt: Hunt):
    return redirect(reverse("hunts:staff", kwargs={"hunt": hunt.slug}) + "#controls")


@staff_required
@require_POST
@hunt_page()
def staff_control(request, hunt, team, control: str):
    handler = CONTROLS.get(control)
    if handler is None:
        raise Http404(f"No control '{control}'.")
    try:
        messages.success(request, handler(request, hunt))
    except PermissionDenied:
        raise
    except SERVICE_ERRORS as exc:
        messages.error(request, error_message(exc))
    return _back(hunt)


@staff_required
@hunt_page()
def staff_rejudge(request, hunt, team, puzzle: str):
    """GET: what re-judging the puzzle's guesses would change; POST: apply it."""
    try:
        found = _puzzle(hunt, puzzle)
    except ValidationError as exc:
        raise Http404(error_message(exc)) from exc
    if request.method == "POST":
        plan = puzzle_operations.rejudge_apply(puzzle=found, staff=request.user)
        messages.success(
            request,
            f"Re-judged {found.title}: {len(plan.guesses)} verdict(s) changed, "
            f"{len(plan.gains)} solve(s) gained, {len(plan.losses)} lost.",
        )
        return _back(hunt)
    plan = puzzle_operations.rejudge_preview(puzzle=found)
    context = {"hunt": hunt, "team": team, "nav": "staff", "puzzle": found, "plan": plan}
    return render(request, "hunts/staff_rejudge.html", context)
