"""Staff controls of a live hunt on its puzzles and scores: one use case per function, staff only.

Unlock or re-lock a puzzle for one team or all, adjust a score, post and edit errata, re-judge a puzzle's
guesses after its answers changed. Admin actions, the staff live view and the staff API call these; see
.dev/README_running.md. Locks as everywhere: Hunt, then Team rows by ascending id.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from hunts.errors import NotFound
from hunts.events import EventLog, mark_leaderboard_dirty
from hunts.models import Hunt, Team
from hunts.operations import require_staff
from hunts.services import lock_hunt, lock_team, lock_teams

from . import checkers, leaderboard
from .models import Erratum, Guess, Puzzle, ScoreAdjustment, Solve, Unlock
from .services import _record_solve

REASON_MAX = 500
ERRATUM_MAX = 2000
POINTS_MAX = 1_000_000


def _puzzle_ref(puzzle: Puzzle) -> dict:
    return {"slug": puzzle.slug, "title": puzzle.title}


def _target_teams(puzzle: Puzzle, team: Team | None) -> dict[int, Team]:
    """The locked target teams (one, or every team of the puzzle's hunt), by id."""
    if team is not None and team.hunt_id != puzzle.hunt_id:
        raise NotFound(f"Team {team.name} is not in the hunt of {puzzle.title}.")
    if team is not None:
        return {team.pk: lock_team(team.pk)}
    return lock_teams(Team.objects.filter(hunt_id=puzzle.hunt_id).values_list("pk", flat=True))


# --- Unlock and re-lock ---------------------------------------------------------------------


@transaction.atomic
def unlock_puzzle(*, puzzle: Puzzle, staff: AbstractBaseUser, team: Team | None = None) -> int:
    """Open the puzzle for the team (None: every team of the hunt) whatever its rules; logs puzzle.unlocked.

    Undoes a re-lock. Returns how many teams newly see it (those that had it open already are left alone).
    """
    require_staff(staff)
    now = timezone.now()
    hunt = puzzle.hunt
    teams = _target_teams(puzzle, team)
    rows = {u.team_id: u for u in Unlock.objects.filter(puzzle=puzzle, team_id__in=list(teams))}
    open_by_default = not puzzle.has_rules and hunt.starts_at <= now
    created, reopened = [], []
    for team_id in teams:
        row = rows.get(team_id)
        if row is None and not open_by_default:
            created.append(Unlock(team_id=team_id, puzzle=puzzle, unlocked_at=now))
        elif row is not None and row.locked:
            # Timed hints count from now: the team sees the puzzle (again) from now.
            row.locked, row.unlocked_at = False, now
            reopened.append(row)
    Unlock.objects.bulk_create(created)
    Unlock.objects.bulk_update(reopened, ["locked", "unlocked_at"])
    opened = sorted(u.team_id for u in created + reopened)
    log = EventLog(hunt)
    data = {"puzzle": {**_puzzle_ref(puzzle), "round": puzzle.round.title, "points": puzzle.points}}
    for team_id in opened:
        log.team(teams[team_id], "puzzle.unlocked", data, staff=True)
    log.flush()
    return len(opened)


@transaction.atomic
def lock_puzzle(*, puzzle: Puzzle, staff: AbstractBaseUser, team: Team | None = None) -> int:
    """Hide the puzzle from the team (None: every team) until staff unlock it; logs puzzle.locked.

    Teams that solved it keep it (a single team that solved it is refused). The rules never reopen a
    re-locked puzzle; a team that has not reached it yet is locked out ahead. Pending guesses are still
    judged. Returns how many teams lost sight of it.
    """
    require_staff(staff)
    now = timezone.now()
    teams = _target_teams(puzzle, team)
    solved = set(
        Solve.objects.filter(puzzle=puzzle, team_id__in=list(teams)).values_list("team_id", flat=True)
    )
    if team is not None and team.pk in solved:
        raise ValidationError(f"Team {team.name} solved {puzzle.title} already; it stays open for them.")
    rows = {u.team_id: u for u in Unlock.objects.filter(puzzle=puzzle, team_id__in=list(teams))}
    open_by_default = not puzzle.has_rules and puzzle.hunt.starts_at <= now
    created, relocked, hidden = [], [], []
    for team_id in teams:
        if team_id in solved:
            continue
        row = rows.get(team_id)
        if row is None:
            created.append(Unlock(team_id=team_id, puzzle=puzzle, unlocked_at=now, locked=True))
            if open_by_default:
                hidden.append(team_id)
        elif not row.locked:
            row.locked = True
            relocked.append(row)
            hidden.append(team_id)
    Unlock.objects.bulk_create(created)
    Unlock.objects.bulk_update(relocked, ["locked"])
    log = EventLog(puzzle.hunt)
    for team_id in sorted(hidden):
        log.team(teams[team_id], "puzzle.locked", {"puzzle": _puzzle_ref(puzzle)}, staff=True)
    log.flush()
    return len(hidden)


# --- Scores ---------------------------------------------------------------------------------


@transaction.atomic
def adjust_score(*, team: Team, points: int, reason: str, staff: AbstractBaseUser) -> ScoreAdjustment:
    """Add (or take, when negative) points with a reason the team sees; logs score.adjusted.

    A raise moves last_scored_at (the tie-break) to now; a penalty leaves it. The score may go negative.
    """
    require_staff(staff)
    reason = " ".join((reason or "").split())
    errors = {}
    if not points:
        errors["points"] = ["Give a number of points other than 0 (negative to take points)."]
    elif abs(points) > POINTS_MAX:
        errors["points"] = [f"Adjust by at most {POINTS_MAX} points."]
    if not reason:
        errors["reason"] = ["Give the reason; the team sees it."]
    elif len(reason) > REASON_MAX:
        errors["reason"] = [f"Reasons have at most {REASON_MAX} characters."]
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    team = lock_team(team.pk)
    adjustment = ScoreAdjustment.objects.create(
        team=team, points=points, reason=reason, staff=staff, created_at=now
    )
    team.score += points
    if points > 0:
        team.last_scored_at = now
    log = EventLog(team.hunt)
    log.save_team(team, "score", "last_scored_at")
    log.team(team, "score.adjusted", {"points": points, "reason": reason}, staff=True)
    log.flush()
    mark_leaderboard_dirty(team.hunt_id)
    return adjustment


# --- Errata ---------------------------------------------------------------------------------


def _clean_erratum(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": ["Write the erratum."]})
    if len(text) > ERRATUM_MAX:
        raise ValidationError({"text": [f"Errata have at most {ERRATUM_MAX} characters."]})
    return text


def _push_erratum(hunt: Hunt, erratum: Erratum, puzzle: Puzzle) -> None:
    log = EventLog(hunt)
    log.hunt_wide("erratum.posted", {"id": erratum.pk, "puzzle": puzzle.slug, "text": erratum.text})
    log.flush()


@transaction.atomic
def post_erratum(*, puzzle: Puzzle, text: str, staff: AbstractBaseUser) -> Erratum:
    """Post a correction to a puzzle; logs erratum.posted on the hunt stream (shown by teams with it)."""
    require_staff(staff)
    text = _clean_erratum(text)
    now = timezone.now()
    hunt = lock_hunt(puzzle.hunt_id)
    erratum = Erratum.objects.create(puzzle=puzzle, text=text, created_at=now, updated_at=now)
    _push_erratum(hunt, erratum, puzzle)
    return erratum


@transaction.atomic
def edit_erratum(*, erratum: Erratum, text: str, staff: AbstractBaseUser) -> Erratum:
    """Correct an erratum's text; pushes erratum.posted again with the same id (clients replace the text)."""
    require_staff(staff)
    text = _clean_erratum(text)
    puzzle = erratum.puzzle
    hunt = lock_hunt(puzzle.hunt_id)
    erratum = Erratum.objects.select_for_update(no_key=True).get(pk=erratum.pk)
    if erratum.text == text:
        return erratum
    erratum.text, erratum.updated_at = text, timezone.now()
    erratum.save(update_fields=["text", "updated_at"])
    _push_erratum(hunt, erratum, puzzle)
    return erratum


# --- Re-judging -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuessChange:
    guess_id: int
    team_id: int
    team_slug: str
    team_name: str
    text: str
    created_at: datetime
    old_status: str
    new_status: str
    new_response: str


@dataclass(frozen=True)
class SolveChange:
    team_id: int
    team_slug: str
    team_name: str
    at: datetime
    points: int
    post_hunt: bool
    guess_id: int | None = None  # the guess that solves it (gains only)


@dataclass
class RejudgePlan:
    """What re-judging a puzzle's guesses against its current answers changes."""

    puzzle: Puzzle
    guesses: list[GuessChange] = field(default_factory=list)
    gains: list[SolveChange] = field(default_factory=list)
    losses: list[SolveChange] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.guesses or self.gains or self.losses)


def _plan(puzzle: Puzzle) -> RejudgePlan:
    """Judge every judged guess of the puzzle again (pending ones are left to the judge, which uses the
    current answers anyway); a team gains a solve at its first now-correct guess, and loses its solve when
    none of its guesses is correct any more."""
    answers = list(puzzle.answers.all())
    hunt = puzzle.hunt = Hunt.objects.get(pk=puzzle.hunt_id)  # its end decides what a gain is worth
    plan = RejudgePlan(puzzle=puzzle)
    first_correct: dict[int, Guess] = {}
    guesses = (
        Guess.objects.filter(puzzle=puzzle)
        .exclude(status=Guess.Status.PENDING)
        .select_related("team")
        .order_by("created_at", "id")
    )
    for guess in guesses:
        status, response = checkers.judge(answers, guess.text)
        if (status, response) != (guess.status, guess.response):
            plan.guesses.append(
                GuessChange(
                    guess.pk,
                    guess.team_id,
                    guess.team.slug,
                    guess.team.name,
                    guess.text,
                    guess.created_at,
                    guess.status,
                    status,
                    response,
                )
            )
        if status == Guess.Status.CORRECT:
            first_correct.setdefault(guess.team_id, guess)
    solves = {s.team_id: s for s in Solve.objects.filter(puzzle=puzzle).select_related("team")}
    for team_id, solve in sorted(solves.items()):
        if team_id not in first_correct:
            plan.losses.append(
                SolveChange(
                    team_id, solve.team.slug, solve.team.name, solve.solved_at, solve.points, solve.post_hunt
                )
            )
    for team_id, guess in sorted(first_correct.items()):
        if team_id not in solves:
            post_hunt = guess.created_at >= hunt.ends_at
            points = 0 if post_hunt else puzzle.points
            plan.gains.append(
                SolveChange(
                    team_id, guess.team.slug, guess.team.name, guess.created_at, points, post_hunt, guess.pk
                )
            )
    return plan


def rejudge_preview(*, puzzle: Puzzle) -> RejudgePlan:
    """What rejudge_apply would change now: guesses whose verdict changes, solves gained and lost."""
    return _plan(puzzle)


@transaction.atomic
def rejudge_apply(*, puzzle: Puzzle, staff: AbstractBaseUser) -> RejudgePlan:
    """Re-judge the puzzle's guesses against its current answers and apply the consequences.

    Guesses get their new verdicts (no second guess.judged: the log holds one per guess; pages show the
    new verdict on load). A gained solve is dated at its guess (worth 0 if that guess came after the end),
    logs puzzle.solved, opens what it unlocks and claims due treasures. A lost solve is deleted and logs
    score.adjusted with the points taken; what it had unlocked stays open and treasures found stay found.
    Returns the plan applied, computed under the team locks.
    """
    require_staff(staff)
    now = timezone.now()
    team_ids = set(Guess.objects.filter(puzzle=puzzle).values_list("team_id", flat=True))
    team_ids |= set(Solve.objects.filter(puzzle=puzzle).values_list("team_id", flat=True))
    teams = lock_teams(team_ids)
    plan = _plan(puzzle)
    hunt = puzzle.hunt
    for team in teams.values():
        team.hunt = hunt
    if plan.empty:
        return plan
    changed = {c.guess_id: c for c in plan.guesses}
    guesses = {g.pk: g for g in Guess.objects.filter(pk__in=list(changed)).select_related("user")}
    for guess_id, change in changed.items():
        guess = guesses[guess_id]
        guess.status, guess.response, guess.judged_at = change.new_status, change.new_response, now
    Guess.objects.bulk_update(list(guesses.values()), ["status", "response", "judged_at"])
    answers = list(puzzle.answers.all())
    log = EventLog(hunt)
    for gain in plan.gains:
        guess = guesses.get(gain.guess_id) or Guess.objects.select_related("user").get(pk=gain.guess_id)
        _record_solve(
            team=teams[gain.team_id],
            puzzle=puzzle,
            guess=guess,
            answers=answers,
            now=now,
            events=log,
            solved_at=gain.at,
        )
    if plan.losses:
        lost = [loss.team_id for loss in plan.losses]
        Solve.objects.filter(puzzle=puzzle, team_id__in=lost).delete()
        recomputed = leaderboard.totals(team_ids=lost)
        for loss in plan.losses:
            team = teams[loss.team_id]
            fresh = recomputed.get(team.pk, {"score": 0, "solves": 0, "last_scored_at": None})
            team.score, team.solve_count = fresh["score"], fresh["solves"]
            team.last_scored_at = fresh["last_scored_at"]
            log.save_team(team, "score", "solve_count", "last_scored_at")
            log.team(
                team,
                "score.adjusted",
                {
                    "points": -loss.points,
                    "reason": f"Re-judged: {puzzle.title} is no longer solved (its answer was corrected).",
                },
                staff=True,
            )
    log.flush()
    mark_leaderboard_dirty(hunt.pk)
    return plan
