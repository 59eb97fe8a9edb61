"""Pages of the event and its people: hunt list, hunt home, team create/join/leave and the staff live view.

Views parse input, call one service and render; service errors are shown by hunts.web.service_errors.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from puzzles.leaderboard import rank_of
from puzzles.selectors import (
    errata_of,
    finds_of,
    latest_guesses,
    open_hint_requests,
    progress_grid,
    puzzles_for,
)
from puzzles.services import answer_hint_request

from .forms import AnnouncementForm, HintAnswerForm, TeamCreateForm, TeamJoinForm
from .models import Hunt
from .selectors import announcements_of, hunts_for, member_names, teams_by_score
from .services import create_team, join_team, leave_team, post_announcement
from .web import hunt_page, service_errors, staff_required

ANNOUNCEMENTS_SHOWN = 20
STAFF_TEAMS_PER_PAGE = 50


def hunt_list(request):
    now = timezone.now()
    groups = {state: [] for state in Hunt.State}
    for hunt in hunts_for(request.user):
        groups[hunt.state_at(now)].append(hunt)
    sections = [
        ("running", "Running now", groups[Hunt.State.RUNNING]),
        ("upcoming", "Upcoming", groups[Hunt.State.UPCOMING]),
        ("ended", "Finished", sorted(groups[Hunt.State.ENDED], key=lambda h: h.ends_at, reverse=True)),
    ]
    return render(request, "hunts/hunt_list.html", {"sections": sections})


def _rounds(puzzles) -> list[dict]:
    """Puzzles (already in hunt order) grouped by round, with solved counts."""
    rounds: list[dict] = []
    for puzzle in puzzles:
        if not rounds or rounds[-1]["round"].pk != puzzle.round_id:
            rounds.append({"round": puzzle.round, "puzzles": [], "solved": 0})
        rounds[-1]["puzzles"].append(puzzle)
        rounds[-1]["solved"] += puzzle.solved_at is not None
    return rounds


@hunt_page()
def hunt_detail(request, hunt, team):
    now = timezone.now()
    context = {
        "hunt": hunt,
        "team": team,
        "nav": "home",
        "announcements": list(announcements_of(hunt)[:ANNOUNCEMENTS_SHOWN]),
    }
    if team is not None:
        puzzles = list(puzzles_for(team, now=now))
        context.update(
            members=member_names(team),
            rank=rank_of(hunt, team),
            rounds=_rounds(puzzles),
            finds=list(finds_of(team)),
            errata=list(errata_of([p.pk for p in puzzles])),
            solved_count=sum(p.solved_at is not None for p in puzzles),
        )
    return render(request, "hunts/hunt_detail.html", context)


@login_required
@hunt_page()
def team_create(request, hunt, team):
    form = TeamCreateForm(request.POST or None)
    context = {"hunt": hunt, "team": team, "form": form}
    if request.method == "POST":
        with service_errors(request, form) as call:
            created = create_team(hunt=hunt, user=request.user, name=call.valid()["name"])
            messages.success(
                request, f"Team {created.name} is ready. Share the join code {created.join_code}."
            )
            return redirect(hunt)
        return call.render(request, "hunts/team_create.html", context)
    return render(request, "hunts/team_create.html", context)


@login_required
@hunt_page()
def team_join(request, hunt, team):
    """Join with a code; a link with ?join_code= fills the form in."""
    if request.method == "POST":
        form = TeamJoinForm(request.POST)
        with service_errors(request, form) as call:
            joined = join_team(hunt=hunt, user=request.user, join_code=call.valid()["join_code"])
            messages.success(request, f"You joined team {joined.name}.")
            return redirect(hunt)
        return call.render(request, "hunts/team_join.html", {"hunt": hunt, "team": team, "form": form})
    form = TeamJoinForm(initial={"join_code": request.GET.get("join_code", "")})
    return render(request, "hunts/team_join.html", {"hunt": hunt, "team": team, "form": form})


@hunt_page(team=True)
def team_leave(request, hunt, team):
    """GET asks to confirm; POST leaves."""
    context = {"hunt": hunt, "team": team, "members": member_names(team)}
    if request.method == "POST":
        with service_errors(request) as call:
            leave_team(hunt=hunt, user=request.user)
            messages.success(request, f"You left team {team.name}.")
            return redirect(hunt)
        return call.render(request, "hunts/team_leave.html", context)
    return render(request, "hunts/team_leave.html", context)


# --- Staff live view ----------------------------------------------------------------------


def _staff_context(request, hunt: Hunt, *, announcement_form=None, answer_forms=None) -> dict:
    """Everything the live view shows; bound forms with errors replace the blank ones."""
    teams = Paginator(teams_by_score(hunt), STAFF_TEAMS_PER_PAGE).get_page(request.GET.get("page"))
    puzzles, grid = progress_grid(hunt=hunt, teams=list(teams))
    hint_requests = list(open_hint_requests(hunt))
    answer_forms = answer_forms or {}
    for hint_request in hint_requests:
        hint_request.form = answer_forms.get(hint_request.pk) or HintAnswerForm(prefix=f"r{hint_request.pk}")
    return {
        "hunt": hunt,
        "nav": "staff",
        "guesses": latest_guesses(hunt),
        "hint_requests": hint_requests,
        "puzzles": puzzles,
        "grid": grid,
        "teams_page": teams,
        "announcement_form": announcement_form or AnnouncementForm(),
        "announcements": list(announcements_of(hunt)[:5]),
    }


@staff_required
@hunt_page()
def staff_view(request, hunt, team):
    return render(request, "hunts/hunt_staff.html", _staff_context(request, hunt))


@staff_required
@require_POST
@hunt_page()
def staff_announce(request, hunt, team):
    form = AnnouncementForm(request.POST)
    with service_errors(request, form, forbidden_page=True) as call:
        post_announcement(hunt=hunt, text=call.valid()["text"], user=request.user)
        messages.success(request, "Announcement posted.")
        return redirect("hunts:staff", hunt=hunt.slug)
    return call.render(
        request, "hunts/hunt_staff.html", _staff_context(request, hunt, announcement_form=form)
    )


@staff_required
@require_POST
@hunt_page()
def staff_answer_hint(request, hunt, team, request_id: int):
    form = HintAnswerForm(request.POST, prefix=f"r{request_id}")
    with service_errors(request, form, forbidden_page=True) as call:
        answered = answer_hint_request(
            request_id=request_id, staff=request.user, answer=call.valid()["answer"], hunt=hunt
        )
        messages.success(request, f"Answered {answered.team.name}'s question on {answered.puzzle.title}.")
        return redirect("hunts:staff", hunt=hunt.slug)
    context = _staff_context(request, hunt, answer_forms={request_id: form})
    return call.render(request, "hunts/hunt_staff.html", context)
