"""Use cases of play: guesses, judging, unlocks, hints, treasures and the clock."""

import functools
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from hunts.errors import Conflict, NotFound, RateLimited
from hunts.events import EventLog, after_commit, mark_leaderboard_dirty, send_ephemeral, staff_group
from hunts.models import Hunt, Membership, Team
from hunts.services import NOT_ON_A_TEAM, lock_hunt, lock_team
from treasurehunt import hotsql
from treasurehunt.celery import enqueue

from . import checkers, leaderboard
from .models import (
    Answer,
    Guess,
    Hint,
    HintRequest,
    HintUnlock,
    Puzzle,
    Solve,
    Treasure,
    TreasureFind,
    Unlock,
)
from .normalize import dedupe_key, exact_key

log = logging.getLogger(__name__)

GUESS_MAX = 500
QUESTION_MAX = 2000


def iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def guess_data(guess: Guess, *, puzzle_slug: str, username: str | None) -> dict:
    """The GuessObject of DESIGN section 7, for REST and WebSocket alike."""
    return {
        "id": guess.pk,
        "puzzle": puzzle_slug,
        "answer": guess.text,
        "status": guess.status,
        "response": guess.response,
        "user": username,
        "client_id": guess.client_id,
        "created_at": iso(guess.created_at),
        "judged_at": iso(guess.judged_at),
    }


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


def _require_started(hunt: Hunt, now: datetime) -> None:
    if now < hunt.starts_at:
        raise PermissionDenied(f"The hunt starts at {hunt.starts_at:%Y-%m-%d %H:%M} UTC.")


def _require_running(hunt: Hunt, now: datetime) -> None:
    _require_started(hunt, now)
    if now >= hunt.ends_at:
        raise PermissionDenied(f"The hunt ended at {hunt.ends_at:%Y-%m-%d %H:%M} UTC.")


def _log_judged(events: EventLog, guess: Guess, puzzle_slug: str) -> None:
    """Log the verdict once its transaction commits, after the push of `events` (registered at their
    flush): a guess rolled back after judging was never judged, and the line is not written while the
    team's row is locked."""
    log_line = functools.partial(
        log.info,
        "guess %s judged %s (team %s, puzzle %s)",
        guess.pk,
        guess.status,
        guess.team_id,
        puzzle_slug,
        extra={
            "guess_id": guess.pk,
            "team_id": guess.team_id,
            "puzzle": puzzle_slug,
            "status": guess.status,
        },
    )
    events.after_flush(lambda: after_commit(log_line))


def unlocked_puzzle(*, team: Team, slug: str, now: datetime | None = None) -> Puzzle:
    """The team's puzzle with this slug (annotated `solved`); locked and unknown puzzles are both NotFound.

    Puzzle.objects.unlocked_for(team) as one SQL statement for one slug (see _hot_sql), without the
    Markdown columns (deferred) or the round.
    """
    return _puzzle_for_guess(team=team, slug=slug, now=now or timezone.now())


# --- The guess path's statements (treasurehunt/hotsql.py) ------------------------------
# Every guess of every player runs these. Each mirrors the queryset named in its comment;
# puzzles/tests/test_hot_sql.py pins each to it.

_LIGHT = ("body", "solution")  # the puzzle's Markdown, never read on the guess path
ANSWER_ORDER = ("order", "id")  # a puzzle's answers in authoring order, as checkers.judge tries them


@functools.cache
def _hot_sql(vendor: str, async_commit: str | None) -> dict[str, str]:
    t, c = hotsql.table, hotsql.col
    unlock_row = (
        f"SELECT 1 FROM {t(Unlock)} u WHERE u.{c(Unlock, 'team')} = %s "
        f"AND u.{c(Unlock, 'puzzle')} = p.{c(Puzzle, 'id')} AND u.{c(Unlock, 'locked')} = %s"
    )
    guess_of_team = f"SELECT g.{c(Guess, 'id')} FROM {t(Guess)} g WHERE g.{c(Guess, 'team')} = %s"
    on_puzzle = f"g.{c(Guess, 'puzzle')} = p.{c(Puzzle, 'id')}"
    created = f"g.{c(Guess, 'created_at')}"
    member = (
        f"SELECT 1 FROM {t(Membership)} m WHERE m.{c(Membership, 'team')} = t.{c(Team, 'id')} "
        f"AND m.{c(Membership, 'user')} = %s"
    )
    requires = Treasure.requires.through
    auto_treasure = (  # Treasure.objects.filter(requires=puzzle, code_key="").exists()
        f"SELECT 1 FROM {t(requires)} r INNER JOIN {t(Treasure)} tr "
        f"ON tr.{c(Treasure, 'id')} = r.{c(requires, 'treasure')} "
        f"WHERE r.{c(requires, 'puzzle')} = p.{c(Puzzle, 'id')} AND tr.{c(Treasure, 'code_key')} = ''"
    )
    ruled = (  # Puzzle.objects.filter(hunt=puzzle.hunt, has_rules=True).exists()
        f"SELECT 1 FROM {t(Puzzle)} p2 WHERE p2.{c(Puzzle, 'hunt')} = p.{c(Puzzle, 'hunt')} "
        f"AND p2.{c(Puzzle, 'has_rules')} = %s"
    )
    answers = hotsql.json_rows(Answer, "a", f"a.{c(Answer, 'puzzle')} = p.{c(Puzzle, 'id')}", ANSWER_ORDER)
    next_guess_id = hotsql.next_id(Guess)  # in the lock's statement where the database can (PostgreSQL)
    # The puzzle by its unique (hunt, slug) first, in a subquery PostgreSQL keeps as it is (OFFSET 0): with
    # it flattened, the planner may test the unlock rule's subqueries on every puzzle of the hunt before
    # the slug (it did: 2 x 210 subqueries a guess with the bench's 210 puzzles; BENCHMARKS.md, fix 32).
    fence = " OFFSET 0" if vendor == "postgresql" else ""
    by_slug = (
        f"(SELECT {hotsql.columns(Puzzle, skip=_LIGHT)} FROM {t(Puzzle)} "
        f"WHERE {c(Puzzle, 'hunt')} = %s AND {c(Puzzle, 'slug')} = %s{fence}) p"
    )
    team = (
        f"SELECT {hotsql.columns(Team, 't')}, {hotsql.columns(Hunt, 'h')}"
        + (f", {next_guess_id}" if next_guess_id else "")
        + (f", {async_commit}" if async_commit else "")  # the guess's COMMIT waits for no disk (settings)
        + (f", {hotsql.INDEXES_FIRST}" if vendor == "postgresql" else "")  # plans as the table grows
        + f" FROM {t(Team)} t INNER JOIN {t(Hunt)} h ON h.{c(Hunt, 'id')} = t.{c(Team, 'hunt')} "
        f"WHERE t.{c(Team, 'id')} = %s"
    )
    return {
        # Team.objects.select_for_update(no_key=True, of=("self",)).select_related("hunt")
        #     .filter(pk=team.pk[, memberships__user=user]), and on PostgreSQL the id of the guess to come
        "lock_team": team,  # + hotsql.lock_rows("t"), read at each call
        "lock_member_team": f"{team} AND EXISTS ({member})",
        # Puzzle.objects.unlocked_for(team, now).filter(slug=slug): an Unlock row that is not re-locked,
        # or (once the hunt started) no rules and no re-locked row; then, for that puzzle and team:
        # solved: Solve.objects.filter(team=team, puzzle=puzzle).exists()
        # by_client: Guess.objects.filter(team=team, client_id=client_id) (unique)
        # by_key: Guess.objects.filter(team=team, puzzle=puzzle, key=key) (unique; the key depends on
        #     the puzzle's all_exact, so both are sent)
        # nth_at: Guess.objects.filter(team=, puzzle=, created_at__gt=since).order_by("-created_at")
        #     .values_list("created_at")[n - 1]: when the n-th newest guess in the limit's window was made
        # may_claim, may_unlock: whether a solve could complete an auto-claimed treasure or a rule at all
        #     (the queries that decide, _treasures_now_due and locked_rules, are skipped when not)
        # answers: puzzle.answers.order_by(*ANSWER_ORDER), as JSON (hotsql.json_rows)
        "puzzle": (
            f"SELECT {hotsql.columns(Puzzle, 'p', skip=_LIGHT)}, "
            f"EXISTS (SELECT 1 FROM {t(Solve)} s WHERE s.{c(Solve, 'team')} = %s "
            f"AND s.{c(Solve, 'puzzle')} = p.{c(Puzzle, 'id')}), "
            f"({guess_of_team} AND g.{c(Guess, 'client_id')} = %s), "
            f"({guess_of_team} AND {on_puzzle} AND g.{c(Guess, 'key')} = "
            f"(CASE WHEN p.{c(Puzzle, 'all_exact')} THEN %s ELSE %s END)), "
            f"(SELECT {created} FROM {t(Guess)} g WHERE g.{c(Guess, 'team')} = %s AND {on_puzzle} "
            f"AND {created} > %s ORDER BY {created} DESC LIMIT 1 OFFSET %s), "
            f"EXISTS ({auto_treasure}), EXISTS ({ruled}), {answers} "
            f"FROM {by_slug} WHERE (EXISTS ({unlock_row}) OR (%s AND p.{c(Puzzle, 'has_rules')} = %s "
            f"AND NOT EXISTS ({unlock_row})))"
        ),
        # puzzle.answers.order_by(*ANSWER_ORDER)
        "answers": (
            f"SELECT {hotsql.columns(Answer)} FROM {t(Answer)} WHERE {c(Answer, 'puzzle')} = %s "
            f"ORDER BY {', '.join(c(Answer, name) for name in ANSWER_ORDER)}"
        ),
    }


def _sql(name: str) -> str:
    return _hot_sql(connection.vendor, hotsql.async_commit())[name]


def _puzzle_for_guess(
    *,
    team: Team,
    slug: str,
    now: datetime,
    keys: tuple[str | None, str | None] = (None, None),
    client_id: str | None = None,
    limit: tuple[datetime, int] | None = None,
) -> Puzzle:
    """The team's open puzzle with this slug, read with what the guess path asks of it, in one statement.

    Annotated: `solved`; `seen_by_client` and `seen_by_key`, ids of the team's guesses with this
    client_id or with this answer's dedupe key on the puzzle (`keys`: for exact-only puzzles, for others);
    `nth_at`, when the n-th newest guess after `since` was made (`limit`: (since, n)), else None;
    `may_claim` (an auto-claimed treasure requires it) and `may_unlock` (the hunt has rule-based puzzles),
    without which a solve skips the treasure and unlock queries; `answer_list`, its answers in authoring
    order (as _answers). Locked and unknown puzzles are NotFound.
    """
    since, n = limit if limit is not None else (None, 1)
    params = [
        team.pk,
        team.pk,
        client_id,
        team.pk,
        *keys,
        team.pk,
        None if since is None else connection.ops.adapt_datetimefield_value(since),
        n - 1,
        True,
        team.hunt_id,
        slug,
        team.pk,
        False,
        team.hunt.starts_at <= now,
        False,
        team.pk,
        True,
    ]
    row = hotsql.fetch_one(_sql("puzzle"), params)
    if row is None:
        raise NotFound(f"No puzzle '{slug}' is open for your team.")
    puzzle = hotsql.from_row(Puzzle, row, skip=_LIGHT)
    solved, by_client, by_key, nth_at, may_claim, may_unlock, answers = row[hotsql.width(Puzzle, _LIGHT) :]
    puzzle.answer_list = hotsql.from_json_rows(Answer, answers, ANSWER_ORDER)
    puzzle.solved = bool(solved)
    puzzle.may_claim, puzzle.may_unlock = bool(may_claim), bool(may_unlock)
    puzzle.seen_by_client, puzzle.seen_by_key = by_client, by_key
    puzzle.nth_at = hotsql.convert(Guess, "created_at", nth_at)
    return puzzle


# --- Guessing -------------------------------------------------------------------------


def _storable(value: str) -> bool:
    """Text the database can store: no NUL, no lone surrogate (JSON escapes in a socket frame carry both)."""
    return "\x00" not in value and not any("\ud800" <= ch <= "\udfff" for ch in value)


# What refuses a guess in steps 1-7, before it writes anything.
REFUSALS = (PermissionDenied, NotFound, ValidationError, RateLimited)


def submit_guess(
    *, team: Team, user, puzzle_slug: str, text: str, client_id: str | None = None
) -> tuple[Guess, bool]:
    """Record a guess (DESIGN section 5, steps 1-8 in order, in one transaction); returns (guess, created).

    After the end guesses are still judged, unscored: a correct one records a post-hunt solve worth 0.

    A guess refused in steps 1-7 has written nothing, and its transaction ends with COMMIT, not ROLLBACK:
    psycopg forgets every prepared statement of the connection at a ROLLBACK (and deallocates them on the
    server), so the next guesses on that pooled connection would parse and plan the guess path's
    statements again: about 10 ms of PostgreSQL's CPU for one refusal on a slow VM (BENCHMARKS.md, fix 50).
    Called inside an outer transaction (tests), a refusal releases the savepoint: the team's lock and the
    guess's transaction settings then last until the outer transaction ends.
    """
    with transaction.atomic():
        try:
            admitted = _admit_guess(
                team=team, user=user, puzzle_slug=puzzle_slug, text=text, client_id=client_id
            )
        except REFUSALS as exc:
            refused = exc  # committed below with nothing written: the team's lock is released
        else:
            if isinstance(admitted, Guess):  # a repeat: the original with what its callers show of it
                return admitted, False
            return _record_guess(admitted), True
    raise refused


@dataclass
class _Admitted:
    """A guess that passed steps 1-7, with what step 8 needs."""

    team: Team
    user: object
    puzzle: Puzzle
    text: str
    key: str
    client_id: str | None
    now: datetime


def _admit_guess(
    *, team: Team, user, puzzle_slug: str, text: str, client_id: str | None
) -> _Admitted | Guess:
    """Steps 1-7 (reads only; the team's row lock taken): the admitted guess, the original of a repeat, or
    one of REFUSALS raised."""
    now = timezone.now()
    team = _lock_guessing_team(team, user)
    hunt = team.hunt
    _require_started(hunt, now)  # 1
    text = (text or "").strip()
    text_error = _answer_error(text)
    client_id = (client_id or "").strip() or None
    client_id_error = _client_id_error(client_id)
    # Step 2 reads, in the same statement, what steps 4 to 7 need: only text that passed step 3 is sent.
    keys = (
        (None, None) if text_error else (dedupe_key(text, all_exact=True), dedupe_key(text, all_exact=False))
    )
    limit = hunt.guess_limit
    puzzle = _puzzle_for_guess(  # 2
        team=team,
        slug=puzzle_slug,
        now=now,
        keys=keys,
        client_id=None if client_id_error else client_id,
        limit=(now - timedelta(minutes=limit["minutes"]), limit["guesses"])
        if limit and limit["guesses"]
        else None,
    )
    if text_error:  # 3
        raise ValidationError({"answer": [text_error]})
    if client_id_error:
        raise ValidationError({"client_id": [client_id_error]})
    key = keys[0] if puzzle.all_exact else keys[1]
    if not key:
        raise ValidationError({"answer": ["Enter an answer with at least one letter or digit."]})
    if puzzle.seen_by_client is not None:  # 4
        return Guess.objects.select_related("puzzle", "user").get(pk=puzzle.seen_by_client)
    if puzzle.seen_by_key is not None:  # 5
        return Guess.objects.select_related("puzzle", "user").get(pk=puzzle.seen_by_key)
    if puzzle.solved:  # 6
        raise ValidationError("Already solved")
    _check_guess_limit(hunt, puzzle, now)  # 7
    return _Admitted(team=team, user=user, puzzle=puzzle, text=text, key=key, client_id=client_id, now=now)


def _record_guess(admitted: _Admitted) -> Guess:
    """Step 8: insert the guess, judged inline where it can be, with its events (caller's transaction)."""
    team, puzzle, user, now = admitted.team, admitted.puzzle, admitted.user, admitted.now
    answers = puzzle.answer_list  # (read with the puzzle)
    status, response = (
        checkers.judge(answers, admitted.text)
        if puzzle.all_exact
        else _judge_inline_final(answers, admitted.text)
    )
    guess = Guess(
        id=team.next_guess_id,
        team=team,
        puzzle=puzzle,
        user=user,
        text=admitted.text,
        key=admitted.key,
        client_id=admitted.client_id,
        created_at=now,
        status=status or Guess.Status.PENDING,
        response=response,
        judged_at=now if status else None,
        enqueued_at=None if status else now,
    )
    events = EventLog(team.hunt)
    with _duplicate_is_a_conflict():
        # A guess whose id was taken with the lock is written with its events, in their statement (one
        # round trip). Without an id yet (SQLite), or before a solve, which reads and writes more rows
        # first, it goes in now.
        if guess.pk is not None and status != Guess.Status.CORRECT:
            events.insert_first(guess)
        else:
            hotsql.insert([guess])
        data = {"guess": guess_data(guess, puzzle_slug=puzzle.slug, username=_username(user))}
        if status:
            events.team(team, "guess.judged", data, staff=True)
            _log_judged(events, guess, puzzle.slug)
            if status == Guess.Status.CORRECT:
                _record_solve(team=team, puzzle=puzzle, guess=guess, answers=answers, now=now, events=events)
        else:
            events.team(team, "guess.pending", data, staff=True)
            events.after_flush(lambda: enqueue("puzzles.tasks.judge_guess_task", guess.pk))
        events.flush()
    return guess


@contextmanager
def _duplicate_is_a_conflict():
    """A statement meeting one of the guess table's unique keys is a Conflict: the guess was just submitted
    (no savepoint: under the team lock a duplicate cannot happen, and if it did, raising rolls the
    transaction back). Any other integrity error (an event's seq taken twice: a broken lock) goes on as
    it is."""
    try:
        yield
    except IntegrityError as exc:
        if _on_guess_table(exc):
            raise Conflict("That guess was just submitted; refresh to see it.") from exc
        raise


def _on_guess_table(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)  # psycopg's error, which names the table
    if diag is not None:
        return diag.table_name == Guess._meta.db_table
    return f"{Guess._meta.db_table}." in str(exc)  # SQLite: "UNIQUE constraint failed: puzzles_guess.…"


def _answer_error(text: str) -> str | None:
    """Why the (stripped) answer text cannot be a guess, if it cannot."""
    if not text:
        return "Enter an answer."
    if len(text) > GUESS_MAX:
        return f"Answers have at most {GUESS_MAX} characters."
    if not _storable(text):
        return "Answers cannot contain null or lone surrogate characters."
    return None


def _client_id_error(client_id: str | None) -> str | None:
    if client_id is not None and len(client_id) > 100:
        return "client_id has at most 100 characters."
    if client_id is not None and not _storable(client_id):
        return "client_id cannot contain null or lone surrogate characters."
    return None


def _answers(puzzle: Puzzle) -> list[Answer]:
    """The puzzle's answers in authoring order."""
    return [hotsql.from_row(Answer, row) for row in hotsql.fetch_all(_sql("answers"), [puzzle.pk])]


def _lock_guessing_team(team: Team, user) -> Team:
    """Lock the team row (with its hunt); the guessing user, if given, must be a member of it right now.

    Checked under the lock that leave_team also takes, so a member who just left cannot guess for the team.
    """
    lock = hotsql.lock_rows("t")
    if user is None:
        row = hotsql.fetch_one(_sql("lock_team") + lock, [team.pk])
    else:
        row = hotsql.fetch_one(_sql("lock_member_team") + lock, [team.pk, user.pk])
    if row is None:
        raise NotFound(NOT_ON_A_TEAM)
    found = hotsql.from_row(Team, row)
    found.hunt = hotsql.from_row(Hunt, row, start=hotsql.width(Team))
    taken = row[hotsql.width(Team) + hotsql.width(Hunt) :]
    found.next_guess_id = taken[0] if taken else None  # None: the INSERT gives the id
    return found


def _judge_inline_final(answers: list[Answer], text: str) -> tuple[str | None, str]:
    """For mixed puzzles: a matching exact final answer is judged at once; anything else waits."""
    key = exact_key(text)
    for answer in answers:
        if answer.kind == Answer.Kind.EXACT and answer.final and exact_key(answer.parameters["value"]) == key:
            return Guess.Status.CORRECT, answer.response or "Correct!"
    return None, ""


def _check_guess_limit(hunt: Hunt, puzzle: Puzzle, now: datetime) -> None:
    """At most `guesses` new guesses per team and puzzle in any sliding window of `minutes`.

    `puzzle.nth_at` is when the team's guesses-th newest guess on it in the window was made (read with the
    puzzle under the team's lock, _puzzle_for_guess), None when there are fewer.
    """
    limit = hunt.guess_limit
    if limit is None:
        return
    window = timedelta(minutes=limit["minutes"])
    if limit["guesses"] == 0:
        raise RateLimited(
            "Guessing is paused for this hunt; try again later.", retry_after=window.total_seconds()
        )
    # The limit is reached while the guesses-th newest guess is in the window; a slot frees when it leaves
    # (the oldest counted guess, also when the limit was lowered and more guesses are in the window).
    if puzzle.nth_at is not None:
        # A teammate's guess that took the lock first may carry a time just after this request's `now`
        # (another process's clock read): the wait is never longer than the window itself.
        wait = min((puzzle.nth_at + window - now).total_seconds(), window.total_seconds())
        raise RateLimited(
            f"Your team has made {limit['guesses']} guesses on this puzzle in the last {limit['minutes']} "
            f"minutes; try again in {max(1, math.ceil(wait))} s.",  # the same number as retry_after
            retry_after=wait,
        )


@transaction.atomic
def judge_guess(*, guess_id: int) -> Guess | None:
    """Judge a pending guess once; judging an already judged (or deleted) guess changes nothing."""
    team_id = Guess.objects.filter(pk=guess_id).values_list("team_id", flat=True).first()
    if team_id is None:
        return None
    team = Team.objects.select_for_update(no_key=True, of=("self",)).select_related("hunt").get(pk=team_id)
    guess = Guess.objects.select_related("puzzle", "user").get(pk=guess_id)
    if guess.status != Guess.Status.PENDING:
        return guess
    hotsql.commit_without_waiting_for_disk()  # as a guess judged inline (settings.GUESS_SYNCHRONOUS_COMMIT)
    now = timezone.now()
    answers = _answers(guess.puzzle)
    guess.status, guess.response = checkers.judge(answers, guess.text)
    guess.judged_at = now
    guess.save(update_fields=["status", "response", "judged_at"])
    events = EventLog(team.hunt)
    _log_judged(events, guess, guess.puzzle.slug)
    events.team(
        team,
        "guess.judged",
        {"guess": guess_data(guess, puzzle_slug=guess.puzzle.slug, username=_username(guess.user))},
        staff=True,
    )
    if (
        guess.status == Guess.Status.CORRECT
        and not Solve.objects.filter(team=team, puzzle=guess.puzzle).exists()
    ):
        _record_solve(team=team, puzzle=guess.puzzle, guess=guess, answers=answers, now=now, events=events)
    events.flush()
    return guess


def shows_solved_text(answers: list[Answer]) -> bool:
    """Whether the answer a solving team is shown depends on its text: a pattern among the final answers."""
    return any(a.final and a.kind == Answer.Kind.REGEX for a in answers)


def solved_answer(answers: list[Answer], text: str | None) -> str | None:
    """The answer shown to a team that solved with `text` (None: a team that did not solve, once solutions
    are published): the first final answer as written; where the final answers include a pattern, the
    one the text matched, and for a pattern the text itself (a pattern means little to players)."""
    finals = [a for a in answers if a.final]
    if not finals:
        return text
    if text is None or not shows_solved_text(finals):
        return finals[0].display
    matched = checkers.matching_final(finals, text) or finals[0]
    return text if matched.kind == Answer.Kind.REGEX else matched.display


def _record_solve(
    *,
    team: Team,
    puzzle: Puzzle,
    guess: Guess,
    answers: list[Answer],
    now: datetime,
    events: EventLog,
    solved_at: datetime | None = None,
) -> Solve:
    """Insert the solve, award points, apply unlocks, queue treasure claims (caller holds the team lock).

    A guess sent after the hunt ended makes a post-hunt solve: worth 0, not counted, no treasure claims;
    unlocks still follow. `solved_at` (default now) is earlier only for a solve found by re-judging.
    """
    solved_at = solved_at or now
    post_hunt = guess.created_at >= team.hunt.ends_at
    points = 0 if post_hunt else puzzle.points
    solve = Solve.objects.create(
        team=team, puzzle=puzzle, solved_at=solved_at, points=points, post_hunt=post_hunt
    )
    if not post_hunt:
        team.score += points
        team.solve_count += 1
        if points > 0 and (team.last_scored_at is None or solved_at > team.last_scored_at):
            team.last_scored_at = solved_at
        events.save_team(team, "score", "solve_count", "last_scored_at")
    events.team(
        team,
        "puzzle.solved",
        {
            "puzzle": {"slug": puzzle.slug, "title": puzzle.title},
            "points": points,
            "answer": solved_answer(answers, guess.text),
            "by": _username(guess.user),
        },
    )
    # Read with the puzzle on the guess path (_puzzle_for_guess); elsewhere the queries decide alone.
    if getattr(puzzle, "may_unlock", True):
        _apply_unlocks(team=team, now=now, events=events)
    if not post_hunt and getattr(puzzle, "may_claim", True) and _treasures_now_due(team=team, puzzle=puzzle):
        events.after_flush(lambda: enqueue("puzzles.tasks.claim_treasures_task", team.pk))
    mark_leaderboard_dirty(team.hunt_id)
    return solve


# --- Unlock rules ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    puzzle_id: int
    round_id: int
    after_minutes: int | None
    solves: int | None
    round_solves: int | None
    prerequisites: frozenset[int]
    needed: int | None

    def due_at(self, hunt: Hunt) -> datetime:
        return hunt.starts_at + timedelta(minutes=self.after_minutes or 0)

    def holds(self, *, hunt: Hunt, now: datetime, solved: dict[int, int]) -> bool:
        """Whether every present condition holds; `solved` maps solved puzzle id -> its round id."""
        if now < self.due_at(hunt):
            return False
        if self.solves is not None and len(solved) < self.solves:
            return False
        if (
            self.round_solves is not None
            and sum(r == self.round_id for r in solved.values()) < self.round_solves
        ):
            return False
        if self.prerequisites:
            needed = self.needed if self.needed is not None else len(self.prerequisites)
            if len(self.prerequisites & solved.keys()) < needed:
                return False
        return True


def locked_rules(*, hunt: Hunt, team_ids: list[int] | None = None, timed_only: bool = False) -> list[Rule]:
    """Rules of the hunt's rule-based puzzles (optionally only timed ones), with their prerequisites."""
    qs = Puzzle.objects.filter(hunt=hunt, has_rules=True)
    if timed_only:
        qs = qs.filter(unlock_after_minutes__isnull=False)
    if team_ids is not None and len(team_ids) == 1:
        qs = qs.exclude(Exists(Unlock.objects.filter(team_id=team_ids[0], puzzle=OuterRef("pk"))))
    rows = list(
        qs.values_list(
            "pk", "round_id", "unlock_after_minutes", "unlock_solves", "unlock_round_solves", "unlock_needed"
        )
    )
    if not rows:
        return []
    prereqs: dict[int, set[int]] = {}
    through = Puzzle.prerequisites.through
    for src, dst in through.objects.filter(from_puzzle_id__in=[r[0] for r in rows]).values_list(
        "from_puzzle_id", "to_puzzle_id"
    ):
        prereqs.setdefault(src, set()).add(dst)
    return [
        Rule(pk, round_id, after, solves, round_solves, frozenset(prereqs.get(pk, ())), needed)
        for pk, round_id, after, solves, round_solves, needed in rows
    ]


def _unlock(*, team: Team, rules: list[Rule], solved: dict[int, int], now: datetime, events: EventLog) -> int:
    """Insert the unlocks whose whole rule now holds; returns how many.

    The caller holds the team lock and passes only the team's still-locked rules (`locked_rules`).
    """
    new = [r.puzzle_id for r in rules if r.holds(hunt=team.hunt, now=now, solved=solved)]
    if not new:
        return 0
    Unlock.objects.bulk_create([Unlock(team=team, puzzle_id=pid, unlocked_at=now) for pid in new])
    for puzzle in Puzzle.objects.filter(pk__in=new).select_related("round").order_by("round__order", "order"):
        events.team(
            team,
            "puzzle.unlocked",
            {
                "puzzle": {
                    "slug": puzzle.slug,
                    "title": puzzle.title,
                    "round": puzzle.round.title,
                    "points": puzzle.points,
                }
            },
        )
    return len(new)


def _solved_map(team_ids: list[int]) -> dict[int, dict[int, int]]:
    solved: dict[int, dict[int, int]] = {tid: {} for tid in team_ids}
    for tid, pid, rid in Solve.objects.filter(team_id__in=team_ids).values_list(
        "team_id", "puzzle_id", "puzzle__round_id"
    ):
        solved[tid][pid] = rid
    return solved


def _apply_unlocks(*, team: Team, now: datetime, events: EventLog) -> int:
    rules = locked_rules(hunt=team.hunt, team_ids=[team.pk])
    if not rules:
        return 0
    return _unlock(team=team, rules=rules, solved=_solved_map([team.pk])[team.pk], now=now, events=events)


# --- Hints ------------------------------------------------------------------------------


def puzzle_unlocked_at(*, team: Team, puzzle: Puzzle) -> datetime | None:
    if not puzzle.has_rules:
        return max(team.hunt.starts_at, team.created_at)
    return Unlock.objects.filter(team=team, puzzle=puzzle).values_list("unlocked_at", flat=True).first()


def hint_available_at(hint: Hint, unlocked_at: datetime | None) -> datetime | None:
    """When a timed hint becomes free for a team that unlocked its puzzle at `unlocked_at`."""
    if hint.after_minutes is None or unlocked_at is None:
        return None
    return unlocked_at + timedelta(minutes=hint.after_minutes)


def _hint_frame(hint: Hint, puzzle: Puzzle, cost: int) -> dict:
    return {"puzzle": puzzle.slug, "hint": {"id": hint.pk, "text": hint.text, "cost": cost}}


@transaction.atomic
def unlock_hint(*, team: Team, puzzle_slug: str, hint_id: int) -> tuple[Hint, bool]:
    """Buy (or take, once free) a hint; buying twice charges once. Returns (hint, newly unlocked)."""
    now = timezone.now()
    team = lock_team(team.pk)
    puzzle = unlocked_puzzle(team=team, slug=puzzle_slug, now=now)
    hint = Hint.objects.filter(puzzle=puzzle, pk=hint_id).first()
    if hint is None:
        raise NotFound("No such hint for this puzzle.")
    if hint.always_visible or HintUnlock.objects.filter(team=team, hint=hint).exists():
        return hint, False
    available_at = hint_available_at(hint, puzzle_unlocked_at(team=team, puzzle=puzzle))
    free = available_at is not None and available_at <= now
    if free:
        cost = 0
    elif hint.cost is None:
        raise ValidationError(f"This hint opens at {available_at:%H:%M} UTC; it cannot be bought.")
    else:
        _require_running(team.hunt, now)  # scores are final once the hunt ended
        cost = hint.cost
        if team.score < cost:
            raise ValidationError(f"This hint costs {cost} points; your team has {team.score}.")
    HintUnlock.objects.create(team=team, hint=hint, cost=cost, unlocked_at=now)
    events = EventLog(team.hunt)
    if cost:
        team.score -= cost
        events.save_team(team, "score")
        mark_leaderboard_dirty(team.hunt_id)
    events.team(team, "hint.unlocked", _hint_frame(hint, puzzle, cost))
    events.flush()
    return hint, True


@transaction.atomic
def request_hint(*, team: Team, user, puzzle_slug: str, question: str) -> HintRequest:
    """Ask staff a free-text question about a puzzle the team has open."""
    now = timezone.now()
    team = lock_team(team.pk)
    _require_running(team.hunt, now)
    puzzle = unlocked_puzzle(team=team, slug=puzzle_slug, now=now)
    question = (question or "").strip()
    if not question:
        raise ValidationError({"question": ["Write your question."]})
    if len(question) > QUESTION_MAX:
        raise ValidationError({"question": [f"Questions have at most {QUESTION_MAX} characters."]})
    open_count = HintRequest.objects.filter(team=team, puzzle=puzzle, status=HintRequest.Status.OPEN).count()
    if open_count >= team.hunt.max_open_hint_requests:
        raise ValidationError(
            f"Your team already has {open_count} open questions on this puzzle; wait for an answer first."
        )
    request = HintRequest.objects.create(
        team=team, puzzle=puzzle, user=user, question=question, created_at=now
    )
    frame = {
        "type": "hint.requested",
        "stream": "staff",
        "team": {"slug": team.slug, "name": team.name},
        "data": {"puzzle": puzzle.slug, "request": {"id": request.pk, "question": question}},
    }
    hunt_id = team.hunt_id
    after_commit(lambda: send_ephemeral(group=staff_group(hunt_id), frame=frame))
    return request


@transaction.atomic
def answer_hint_request(*, request_id: int, staff, answer: str, hunt: Hunt | None = None) -> HintRequest:
    """Staff answer a team's question; the team sees it on the puzzle page at once.

    With `hunt` (the hunt whose page was used), a request of another hunt is NotFound.
    """
    if not getattr(staff, "is_staff", False):
        raise PermissionDenied("Only staff can answer hint requests.")
    answer = (answer or "").strip()
    if not answer:
        raise ValidationError({"answer": ["Write the answer."]})
    requests = HintRequest.objects.filter(pk=request_id)
    if hunt is not None:
        requests = requests.filter(team__hunt=hunt)
    team_id = requests.values_list("team_id", flat=True).first()
    if team_id is None:
        raise NotFound("No such hint request.")
    team = lock_team(team_id)
    request = HintRequest.objects.select_related("puzzle").get(pk=request_id)
    request.answer, request.status, request.staff = answer, HintRequest.Status.ANSWERED, staff
    request.answered_at = timezone.now()
    request.save(update_fields=["answer", "status", "staff", "answered_at"])
    events = EventLog(team.hunt)
    events.team(
        team,
        "hint.answered",
        {
            "puzzle": request.puzzle.slug,
            "request": {"id": request.pk, "question": request.question, "answer": answer},
        },
        staff=True,
    )
    events.flush()
    return request


# --- Treasures --------------------------------------------------------------------------


def _treasures_now_due(*, team: Team, puzzle: Puzzle) -> bool:
    """Whether this solve completes the requirements of an auto-claimed treasure the team lacks."""
    candidates = Treasure.objects.filter(requires=puzzle, code_key="").exclude(finds__team=team)
    return candidates.exclude(requires__in=Puzzle.objects.exclude(solves__team=team)).exists()


def due_treasures(*, team: Team) -> list[Treasure]:
    """Auto-claimed treasures whose required puzzles the team has all solved and has not found yet."""
    return list(
        Treasure.objects.filter(hunt_id=team.hunt_id, code_key="", requires__isnull=False)
        .exclude(finds__team=team)
        .exclude(
            requires__in=Puzzle.objects.filter(hunt_id=team.hunt_id).exclude(
                # Post-hunt solves earn no treasures.
                Exists(Solve.objects.filter(team=team, puzzle=OuterRef("pk"), post_hunt=False))
            )
        )
        .distinct()
    )


def claim_due_treasures(*, team_id: int) -> list[TreasureFind]:
    """Claim every treasure the team's solves have earned (run by the treasure task; safe to repeat)."""
    team = Team.objects.select_related("hunt").filter(pk=team_id).first()
    if team is None:
        return []
    finds = []
    for treasure in due_treasures(team=team):
        try:
            find, created = claim_treasure(team=team, treasure=treasure)
        except Conflict:
            continue
        if created:
            finds.append(find)
    return finds


@transaction.atomic
def claim_treasure(*, team: Team, treasure: Treasure) -> tuple[TreasureFind, bool]:
    """Record a find with its exact rank and bonus, never past the supply. Returns (find, created)."""
    now = timezone.now()
    hunt = lock_hunt(team.hunt_id)
    treasure = Treasure.objects.select_for_update(no_key=True).get(pk=treasure.pk)
    team = lock_team(team.pk)
    team.hunt = hunt
    existing = TreasureFind.objects.filter(treasure=treasure, team=team).first()
    if existing:
        return existing, False
    if treasure.supply is not None and treasure.found_count >= treasure.supply:
        raise Conflict(f"No {treasure.name} left: all {treasure.supply} were found.")
    rank = treasure.found_count + 1
    points = treasure.bonus_for(rank)
    find = TreasureFind.objects.create(treasure=treasure, team=team, rank=rank, found_at=now, points=points)
    treasure.found_count = rank
    Treasure.objects.filter(pk=treasure.pk).update(found_count=rank)
    events = EventLog(hunt)
    if points:
        team.score += points
        if points > 0:
            team.last_scored_at = now
        events.save_team(team, "score", "last_scored_at")
        mark_leaderboard_dirty(hunt.pk)
    events.team(
        team,
        "treasure.found",
        {
            "treasure": {"slug": treasure.slug, "name": treasure.name, "reveal": treasure.reveal},
            "rank": rank,
            "points": points,
        },
    )
    events.hunt_wide(
        "treasure.claimed",
        {
            "treasure": {"slug": treasure.slug, "name": treasure.name},
            "team": {"slug": team.slug, "name": team.name},
            "rank": rank,
            "remaining": treasure.remaining,
        },
    )
    events.flush()
    return find, True


def claim_treasure_by_code(*, team: Team, code: str) -> tuple[TreasureFind, bool]:
    """Claim a treasure by its code, at once; its required puzzles must be solved first."""
    now = timezone.now()
    _require_running(team.hunt, now)
    key = exact_key(code or "")
    if not key:
        raise ValidationError({"code": ["Enter the treasure's code."]})
    treasure = Treasure.objects.filter(hunt_id=team.hunt_id, code_key=key).first()
    if treasure is None:
        raise ValidationError({"code": ["That code does not match any treasure."]})
    existing = TreasureFind.objects.filter(treasure=treasure, team=team).first()
    if existing:
        return existing, False
    if treasure.requires.exclude(solves__team=team).exists():
        raise PermissionDenied(f"Solve the puzzles that lead to {treasure.name} first.")
    return claim_treasure(team=team, treasure=treasure)


# --- The clock --------------------------------------------------------------------------


def release_due(*, hunt: Hunt, now: datetime | None = None) -> dict[str, int]:
    """Apply every time-based change due by `now`, idempotently; returns counts of what changed."""
    now = now or timezone.now()
    done = {"state": _announce_state(hunt=hunt, now=now)}
    if now >= hunt.starts_at:
        done["unlocks"] = _release_timed_unlocks(hunt=hunt, now=now)
        done["hints"] = _release_timed_hints(hunt=hunt, now=now)
        done["clues"] = _release_clues(hunt=hunt, now=now)
    return done


@transaction.atomic
def _announce_state(*, hunt: Hunt, now: datetime) -> int:
    target = hunt.state_at(now)
    if target == hunt.announced_state:
        return 0
    hunt = lock_hunt(hunt.pk)
    order = [Hunt.State.UPCOMING, Hunt.State.RUNNING, Hunt.State.ENDED]
    current = order.index(hunt.announced_state)
    wanted = order.index(target)
    if wanted <= current:
        return 0
    events = EventLog(hunt)
    for state in order[current + 1 : wanted + 1]:
        events.hunt_wide("hunt.started" if state == Hunt.State.RUNNING else "hunt.ended", {})
    Hunt.objects.filter(pk=hunt.pk).update(announced_state=target)
    events.flush()
    mark_leaderboard_dirty(hunt.pk)
    return wanted - current


def _release_timed_unlocks(*, hunt: Hunt, now: datetime) -> int:
    rules = [r for r in locked_rules(hunt=hunt, timed_only=True) if r.due_at(hunt) <= now]
    if not rules:
        return 0
    unlocked = set(
        Unlock.objects.filter(team__hunt=hunt, puzzle_id__in=[r.puzzle_id for r in rules]).values_list(
            "team_id", "puzzle_id"
        )
    )
    team_ids = list(Team.objects.filter(hunt=hunt).values_list("pk", flat=True))
    solved = _solved_map([tid for tid in team_ids if any((tid, r.puzzle_id) not in unlocked for r in rules)])
    count = 0
    for team_id, team_solved in solved.items():
        candidates = [
            r
            for r in rules
            if (team_id, r.puzzle_id) not in unlocked and r.holds(hunt=hunt, now=now, solved=team_solved)
        ]
        if candidates:
            count += _unlock_for_team(team_id=team_id, hunt=hunt, now=now)
    return count


@transaction.atomic
def _unlock_for_team(*, team_id: int, hunt: Hunt, now: datetime) -> int:
    team = lock_team(team_id)
    team.hunt = hunt
    events = EventLog(hunt)
    count = _apply_unlocks(team=team, now=now, events=events)
    events.flush()
    return count


def _release_timed_hints(*, hunt: Hunt, now: datetime) -> int:
    hints = list(Hint.objects.filter(puzzle__hunt=hunt, after_minutes__isnull=False).select_related("puzzle"))
    if not hints:
        return 0
    taken = set(HintUnlock.objects.filter(hint__in=hints).values_list("team_id", "hint_id"))
    teams = list(Team.objects.filter(hunt=hunt).only("pk", "created_at"))
    rows = Unlock.objects.filter(team__hunt=hunt, puzzle_id__in={h.puzzle_id for h in hints}).values_list(
        "team_id", "puzzle_id", "unlocked_at", "locked"
    )
    unlock_times, relocked = {}, set()
    for tid, pid, at, locked in rows:
        if locked:
            relocked.add((tid, pid))  # hidden by staff: its timed hints wait until it is unlocked again
        else:
            unlock_times[(tid, pid)] = at
    due: dict[int, list[Hint]] = {}
    for team in teams:
        for hint in hints:
            if (team.pk, hint.pk) in taken or (team.pk, hint.puzzle_id) in relocked:
                continue
            if hint.puzzle.has_rules:
                opened = unlock_times.get((team.pk, hint.puzzle_id))
            else:
                opened = max(hunt.starts_at, team.created_at)
            available = hint_available_at(hint, opened)
            if available is not None and available <= now:
                due.setdefault(team.pk, []).append(hint)
    for team_id, team_hints in due.items():
        _grant_hints(team_id=team_id, hunt=hunt, hints=team_hints, now=now)
    return sum(len(h) for h in due.values())


@transaction.atomic
def _grant_hints(*, team_id: int, hunt: Hunt, hints: list[Hint], now: datetime) -> None:
    team = lock_team(team_id)
    taken = set(HintUnlock.objects.filter(team=team, hint__in=hints).values_list("hint_id", flat=True))
    fresh = [h for h in hints if h.pk not in taken]
    if not fresh:
        return
    HintUnlock.objects.bulk_create([HintUnlock(team=team, hint=h, cost=0, unlocked_at=now) for h in fresh])
    events = EventLog(hunt)
    for hint in fresh:
        events.team(team, "hint.unlocked", _hint_frame(hint, hint.puzzle, 0))
    events.flush()


def reopen_edited_clue(treasure: Treasure, old_clue: str, *, now: datetime | None = None) -> list[str]:
    """A clue that went out and whose text is then corrected goes out again, at once if its time has
    passed (the clock's next tick), else at its time: clears `clue_released`. Returns the fields this
    changed, to save with the edit (the hunt file's import and the admin call it, holding the hunt's lock
    as the clock's release takes it, with `clue_released` read under it).

    Not for a change of whitespace alone, a time moved after the clue went out (it is out), a clue emptied,
    or a hunt that has ended (the clock sends nothing after the end: the clue stays shown as it was)."""
    if not treasure.clue_released or not treasure.clue.strip():
        return []
    if _clue_words(treasure.clue) == _clue_words(old_clue):
        return []
    if treasure.hunt.ends_at <= (now or timezone.now()):
        return []
    treasure.clue_released = False
    return ["clue_released"]


def correct_clue(treasure: Treasure, old_clue: str) -> list[str]:
    """reopen_edited_clue for an edit made outside the hunt file's import (the admin): takes the hunt's lock
    as the clock's release does and reads `clue_released` under it, so a clue the clock sends meanwhile
    goes out again corrected."""
    treasure.hunt = lock_hunt(treasure.hunt_id)
    treasure.clue_released = Treasure.objects.values_list("clue_released", flat=True).get(pk=treasure.pk)
    return reopen_edited_clue(treasure, old_clue)


def _clue_words(text: str) -> list[str]:
    return (text or "").split()  # \r\n from a browser's text box, a YAML block's final newline: the same clue


def _release_clues(*, hunt: Hunt, now: datetime) -> int:
    due = list(
        Treasure.objects.filter(hunt=hunt, clue_released=False, clue_at__lte=now)
        .exclude(clue="")
        .values_list("pk", flat=True)
    )
    for treasure_id in due:
        _release_clue(hunt_id=hunt.pk, treasure_id=treasure_id)
    return len(due)


@transaction.atomic
def _release_clue(*, hunt_id: int, treasure_id: int) -> None:
    hunt = lock_hunt(hunt_id)
    treasure = Treasure.objects.select_for_update(no_key=True).get(pk=treasure_id)
    if treasure.clue_released:
        return
    Treasure.objects.filter(pk=treasure.pk).update(clue_released=True)
    events = EventLog(hunt)
    events.hunt_wide(
        "treasure.clue", {"treasure": {"slug": treasure.slug, "name": treasure.name}, "clue": treasure.clue}
    )
    events.flush()


def release_all_due(now: datetime | None = None) -> int:
    """One clock tick over every hunt that is not over yet; returns how many hunts it looked at."""
    now = now or timezone.now()
    hunts = list(Hunt.objects.published().exclude(announced_state=Hunt.State.ENDED, ends_at__lt=now))
    for hunt in hunts:
        try:
            release_due(hunt=hunt, now=now)
        except Exception:
            log.exception("release_due failed for hunt %s", hunt.slug)
        try:
            leaderboard.push_if_changed(hunt)
        except Exception:
            log.exception("leaderboard push failed for hunt %s", hunt.slug)
    return len(hunts)


# --- The sweeper ----------------------------------------------------------------------

SWEEP_AFTER = timedelta(seconds=5)
SWEEP_EVERY = timedelta(seconds=15)


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Re-enqueue work whose enqueue may have been lost: pending guesses and due treasure claims."""
    now = now or timezone.now()
    return {"guesses": _sweep_guesses(now), "claims": _sweep_claims(now)}


SWEEP_BATCH = 1000
# Claims of hunts that ended longer ago than this are no longer looked for.
SWEEP_CLAIMS_AFTER_END = timedelta(hours=1)


def _sweep_guesses(now: datetime) -> int:
    """Pending guesses older than SWEEP_AFTER, each enqueued again at most once per SWEEP_EVERY.

    `enqueued_at` is when the guess last went on the queue: submit_guess sets it to `created_at`, and that
    first enqueue does not hold back the first re-enqueue.
    """
    due = (
        Q(enqueued_at__isnull=True)
        | Q(enqueued_at__lte=models.F("created_at"))
        | Q(enqueued_at__lt=now - SWEEP_EVERY)
    )
    with transaction.atomic():
        # Rows locked by a judge committing its verdict right now are skipped; overlapping sweeps never
        # take the same guess, so none is enqueued twice within SWEEP_EVERY.
        ids = list(
            Guess.objects.select_for_update(skip_locked=True)
            .filter(due, status=Guess.Status.PENDING, created_at__lt=now - SWEEP_AFTER)
            .order_by("created_at")
            .values_list("pk", flat=True)[:SWEEP_BATCH]
        )
        if ids:
            Guess.objects.filter(pk__in=ids).update(enqueued_at=now)
        for guess_id in ids:
            enqueue("puzzles.tasks.judge_guess_task", guess_id)
    return len(ids)


def _sweep_claims(now: datetime) -> int:
    """Teams that solved every required puzzle of an auto-claimed treasure more than 5 s ago and lack it."""
    from django.core.cache import cache

    treasures = (
        Treasure.objects.filter(code_key="", requires__isnull=False)
        .filter(hunt__ends_at__gt=now - SWEEP_CLAIMS_AFTER_END)
        .exclude(supply__isnull=False, found_count__gte=models.F("supply"))
        .distinct()
    )
    team_ids: set[int] = set()
    for treasure in treasures.prefetch_related("requires"):
        required = [p.pk for p in treasure.requires.all()]
        rows = (
            Solve.objects.filter(puzzle_id__in=required, team__hunt_id=treasure.hunt_id, post_hunt=False)
            .exclude(team__treasure_finds__treasure=treasure)
            .values("team_id")
            .annotate(n=Count("puzzle_id", distinct=True), last=Max("solved_at"))
            .filter(n=len(required), last__lt=now - SWEEP_AFTER)
        )
        for row in rows:
            if cache.add(f"sweep:claim:{treasure.pk}:{row['team_id']}", 1, int(SWEEP_EVERY.total_seconds())):
                team_ids.add(row["team_id"])
    with transaction.atomic():
        for team_id in sorted(team_ids):
            enqueue("puzzles.tasks.claim_treasures_task", team_id)
    return len(team_ids)
