"""Pages of play: the puzzle page (guesses, hints, questions), treasures and the leaderboard.

Views parse input, call one service and render; service errors are shown by hunts.web.service_errors.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from hunts.forms import GuessForm, HintRequestForm, TreasureClaimForm
from hunts.web import hunt_page, service_errors

from .charts import CHART_TEAMS, render_svg, top_series
from .leaderboard import board_for
from .models import Guess
from .selectors import (
    errata_of,
    final_answer,
    guesses_of,
    hint_requests_of,
    hints_for,
    last_solve_times,
    puzzle_for,
    treasures_of,
)
from .services import claim_treasure_by_code, request_hint, submit_guess, unlock_hint

LEADERBOARD_PAGE_SIZE = 100
FINDERS_SHOWN = 10


def _puzzle_url(hunt, slug: str, anchor: str = "") -> str:
    url = reverse("puzzles:detail", kwargs={"hunt": hunt.slug, "puzzle": slug})
    return f"{url}#{anchor}" if anchor else url


def _puzzle_context(hunt, team, slug: str, *, guess_form=None, request_form=None) -> dict:
    now = timezone.now()
    puzzle = puzzle_for(team, slug)
    guesses = list(guesses_of(team, puzzle_slug=slug))
    # After the end the answer and the solution are published to every team that has the puzzle.
    published = hunt.state_at(now) == hunt.State.ENDED
    return {
        "hunt": hunt,
        "team": team,
        "nav": "home",
        "puzzle": puzzle,
        "answer": final_answer(puzzle, team) if puzzle.solved_at or published else None,
        "published": published,
        "errata": list(errata_of([puzzle.pk])),
        "guesses": guesses,
        "pending": any(g.status == Guess.Status.PENDING for g in guesses),
        "hints": hints_for(team=team, puzzle=puzzle, unlocked_at=puzzle.unlocked_at, now=now),
        "hint_requests": list(hint_requests_of(team, puzzle)),
        "guess_form": guess_form or GuessForm(),
        "request_form": request_form or HintRequestForm(),
    }


@hunt_page(team=True)
def puzzle_detail(request, hunt, team, puzzle: str):
    return render(request, "puzzles/puzzle_detail.html", _puzzle_context(hunt, team, puzzle))


def _verdict_message(request, guess: Guess, created: bool) -> None:
    said = f"“{guess.text}”"
    response = f" {guess.response}" if guess.response and guess.response != "Correct!" else ""
    if not created:
        messages.info(
            request, f"Your team already guessed {said}: {guess.get_status_display().lower()}.{response}"
        )
    elif guess.status == Guess.Status.CORRECT:
        messages.success(request, f"{said} is correct! Puzzle solved.{response}")
    elif guess.status == Guess.Status.PARTIAL:
        messages.warning(request, f"{said} is on the right track.{response}")
    elif guess.status == Guess.Status.INCORRECT:
        messages.error(request, f"{said} is incorrect.{response}")
    else:
        messages.info(request, f"{said} is being checked; the verdict appears below.")


@require_POST
@hunt_page(team=True)
def puzzle_guess(request, hunt, team, puzzle: str):
    form = GuessForm(request.POST)
    with service_errors(request, form) as call:
        data = call.valid()
        guess, created = submit_guess(team=team, user=request.user, puzzle_slug=puzzle, text=data["answer"])
        if guess.status == Guess.Status.PENDING:
            # Judged after commit, in-process in the embedded mode: show the verdict if it is in already.
            guess.refresh_from_db(fields=["status", "response"])
        _verdict_message(request, guess, created)
        return redirect(_puzzle_url(hunt, puzzle, "guesses"))
    context = _puzzle_context(hunt, team, puzzle, guess_form=form)
    return call.render(request, "puzzles/puzzle_detail.html", context)


@require_POST
@hunt_page(team=True)
def hint_unlock(request, hunt, team, puzzle: str, hint_id: int):
    with service_errors(request) as call:
        _, newly = unlock_hint(team=team, puzzle_slug=puzzle, hint_id=hint_id)
        messages.success(request, "Hint unlocked." if newly else "Your team already has this hint.")
        return redirect(_puzzle_url(hunt, puzzle, f"hint-{hint_id}"))
    return call.render(request, "puzzles/puzzle_detail.html", _puzzle_context(hunt, team, puzzle))


@require_POST
@hunt_page(team=True)
def hint_request(request, hunt, team, puzzle: str):
    form = HintRequestForm(request.POST)
    with service_errors(request, form) as call:
        request_hint(team=team, user=request.user, puzzle_slug=puzzle, question=call.valid()["question"])
        messages.success(request, "Your question was sent to the organizers; the answer will appear here.")
        return redirect(_puzzle_url(hunt, puzzle, "hint-requests"))
    context = _puzzle_context(hunt, team, puzzle, request_form=form)
    return call.render(request, "puzzles/puzzle_detail.html", context)


# --- Treasures ----------------------------------------------------------------------------


def _treasure_context(hunt, team, *, claim_form=None) -> dict:
    treasures = list(treasures_of(hunt))
    for treasure in treasures:
        finds = list(treasure.finds.all())
        treasure.own_find = next((f for f in finds if f.team_id == team.pk), None)
        treasure.finders = finds[:FINDERS_SHOWN]
        treasure.more_finders = max(0, len(finds) - FINDERS_SHOWN)
    return {
        "hunt": hunt,
        "team": team,
        "nav": "treasures",
        "treasures": treasures,
        "claim_form": claim_form or TreasureClaimForm(),
    }


@hunt_page(team=True)
def treasure_list(request, hunt, team):
    return render(request, "puzzles/treasure_list.html", _treasure_context(hunt, team))


@require_POST
@hunt_page(team=True)
def treasure_claim(request, hunt, team):
    form = TreasureClaimForm(request.POST)
    with service_errors(request, form) as call:
        find, created = claim_treasure_by_code(team=team, code=call.valid()["code"])
        name = find.treasure.name
        if created:
            points = f", +{find.points} points" if find.points else ""
            messages.success(request, f"You found {name}! Finder #{find.rank}{points}.")
        else:
            messages.info(request, f"Your team already found {name}.")
        return redirect(
            reverse("puzzles:treasures", kwargs={"hunt": hunt.slug}) + f"#treasure-{find.treasure.slug}"
        )
    context = _treasure_context(hunt, team, claim_form=form)
    return call.render(request, "puzzles/treasure_list.html", context)


# --- Leaderboard --------------------------------------------------------------------------


@hunt_page()
def leaderboard_view(request, hunt, team):
    """Public (spectators need no login). During the freeze players see the board as of the freeze."""
    now = timezone.now()
    board = board_for(hunt, request.user, now=now)
    frozen_at = hunt.frozen_at(now)
    # Staff see the live board (and chart); everyone else the board and chart as of the freeze.
    cutoff = None if request.user.is_staff else frozen_at
    page = Paginator(board, LEADERBOARD_PAGE_SIZE).get_page(request.GET.get("page"))
    last_solves = last_solve_times([row["team_id"] for row in page])
    rows = [
        {
            **row,
            "last_solve": last_solves.get(row["team_id"]),
            "mine": team is not None and row["team_id"] == team.pk,
        }
        for row in page
    ]
    chart = ""
    top = board[:CHART_TEAMS]
    if top and now >= hunt.starts_at:
        series = top_series(hunt.pk, top, before=cutoff)
        chart = render_svg(series, start=hunt.starts_at, end=min(now, hunt.ends_at, cutoff or now))
    else:
        series = []
    context = {
        "hunt": hunt,
        "team": team,
        "nav": "leaderboard",
        "rows": rows,
        "page": page,
        "chart": chart,
        "series": series,
        "frozen_at": frozen_at,
    }
    return render(request, "puzzles/team_leaderboard.html", context)
