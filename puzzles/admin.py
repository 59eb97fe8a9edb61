"""Admin for authoring puzzles and treasures, and for watching play (guesses, solves, finds) live.

Authoring saves go through puzzles.authoring (flags, code keys); answering a hint request goes
through puzzles.services. Play records are read-only logs.
"""

from django.contrib import admin

from hunts.admin import HuntFixedMixin, ReadOnlyAdminMixin, ServiceAdminMixin

from .authoring import refresh_puzzle_flags, treasure_code_key
from .forms import AnswerForm, AnswerFormSet, HintForm, HintRequestAnswerForm, PuzzleForm, TreasureForm
from .models import (
    Answer,
    Guess,
    Hint,
    HintRequest,
    HintUnlock,
    Puzzle,
    Round,
    ScoreAdjustment,
    Solve,
    Treasure,
    TreasureFind,
    Unlock,
)

# --- Authoring ------------------------------------------------------------------------------


@admin.register(Round)
class RoundAdmin(HuntFixedMixin, admin.ModelAdmin):
    list_display = ("title", "hunt", "order")
    list_filter = ("hunt",)
    list_select_related = ("hunt",)
    search_fields = ("title",)
    ordering = ("hunt", "order", "id")


class AnswerInline(admin.TabularInline):
    model = Answer
    form = AnswerForm
    formset = AnswerFormSet
    fields = ("kind", "parameters", "final", "response", "order")

    def get_extra(self, request, obj=None, **kwargs):
        return 0 if obj is not None else 1


class HintInline(admin.TabularInline):
    model = Hint
    form = HintForm
    fields = ("order", "text", "after_minutes", "cost")
    extra = 0


@admin.register(Puzzle)
class PuzzleAdmin(HuntFixedMixin, admin.ModelAdmin):
    form = PuzzleForm
    list_display = ("title", "slug", "hunt", "round", "points", "meta", "order")
    list_filter = ("hunt", "round", "meta")
    list_select_related = ("hunt", "round")
    search_fields = ("title", "slug")
    ordering = ("hunt", "round__order", "order", "id")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("prerequisites",)
    readonly_fields = ("has_rules", "all_exact")
    fieldsets = (
        (None, {"fields": ("hunt", "round", "title", "slug", "order", "points", "meta")}),
        ("Text", {"fields": ("body", "solution")}),
        (
            "Unlock rules",
            {
                "description": "Every condition set must hold; with none, it opens at the hunt start.",
                "fields": (
                    "unlock_after_minutes",
                    "unlock_solves",
                    "unlock_round_solves",
                    "prerequisites",
                    "unlock_needed",
                ),
            },
        ),
        ("Derived (kept up to date on save)", {"fields": ("has_rules", "all_exact")}),
    )
    inlines = (AnswerInline, HintInline)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Answers and prerequisites are saved only now: the flags depend on both.
        refresh_puzzle_flags(form.instance)


class TreasureFindInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TreasureFind
    fields = ("rank", "team", "found_at", "points")
    readonly_fields = fields
    extra = 0


@admin.register(Treasure)
class TreasureAdmin(HuntFixedMixin, admin.ModelAdmin):
    form = TreasureForm
    list_display = ("name", "slug", "hunt", "supply", "found_count", "clue_at", "clue_released")
    list_filter = ("hunt",)
    list_select_related = ("hunt",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("requires",)
    readonly_fields = ("found_count", "clue_released")
    fieldsets = (
        (None, {"fields": ("hunt", "name", "slug", "order", "teaser", "reveal")}),
        ("How it is found", {"fields": ("requires", "code", "supply", "bonus", "found_count")}),
        ("Clue", {"fields": ("clue", "clue_at", "clue_released")}),
    )
    inlines = (TreasureFindInline,)

    def save_model(self, request, obj, form, change):
        obj.code_key = treasure_code_key(obj.code)
        super().save_model(request, obj, form, change)


# --- Play (read-only logs, and staff answers) -----------------------------------------------


@admin.register(Guess)
class GuessAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "team", "puzzle", "user", "text", "status", "response")
    list_filter = ("status", "puzzle__hunt", "puzzle")
    list_select_related = ("team", "puzzle", "user")
    search_fields = ("text", "team__name", "user__username")
    date_hierarchy = "created_at"
    show_full_result_count = False  # the log grows large; skip the unfiltered COUNT(*)


@admin.register(HintRequest)
class HintRequestAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Teams' questions; staff answer in the change form, saved by answer_hint_request."""

    form = HintRequestAnswerForm
    list_display = (
        "created_at",
        "team",
        "puzzle",
        "user",
        "question_start",
        "status",
        "staff",
        "answered_at",
    )
    list_filter = ("status", "puzzle__hunt")
    list_select_related = ("team", "puzzle", "user", "staff")
    search_fields = ("question", "answer", "team__name", "user__username")
    date_hierarchy = "created_at"
    fields = ("team", "puzzle", "user", "created_at", "question", "status", "staff", "answered_at", "answer")
    readonly_fields = ("team", "puzzle", "user", "created_at", "question", "status", "staff", "answered_at")

    @admin.display(description="question")
    def question_start(self, hint_request: HintRequest) -> str:
        question = hint_request.question
        return question if len(question) <= 80 else f"{question[:79]}…"

    def has_add_permission(self, request):
        return False  # teams ask through request_hint

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Solve)
class SolveAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("solved_at", "team", "puzzle", "points")
    list_filter = ("puzzle__hunt", "puzzle")
    list_select_related = ("team", "puzzle")
    search_fields = ("team__name", "puzzle__title")
    date_hierarchy = "solved_at"


@admin.register(Unlock)
class UnlockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("unlocked_at", "team", "puzzle")
    list_filter = ("puzzle__hunt", "puzzle")
    list_select_related = ("team", "puzzle")
    search_fields = ("team__name", "puzzle__title")
    date_hierarchy = "unlocked_at"


@admin.register(HintUnlock)
class HintUnlockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("unlocked_at", "team", "hint", "cost")
    list_filter = ("hint__puzzle__hunt",)
    list_select_related = ("team", "hint__puzzle")
    search_fields = ("team__name",)


@admin.register(TreasureFind)
class TreasureFindAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("found_at", "treasure", "rank", "team", "points")
    list_filter = ("treasure__hunt", "treasure")
    list_select_related = ("treasure", "team")
    search_fields = ("team__name", "treasure__name")


@admin.register(ScoreAdjustment)
class ScoreAdjustmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: an adjustment moves the score and pushes score.adjusted, which only a service may do."""

    list_display = ("created_at", "team", "points", "reason", "staff")
    list_filter = ("team__hunt",)
    list_select_related = ("team", "staff")
    search_fields = ("team__name", "reason")
