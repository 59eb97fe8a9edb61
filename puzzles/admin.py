"""Admin for authoring puzzles and treasures, and for watching play (guesses, solves, finds) live.

Authoring saves go through puzzles.authoring (flags, code keys); answering a hint request goes
through puzzles.services. Play records are read-only logs.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction
from django.template.response import TemplateResponse

from hunts.admin import (
    SERVICE_ERRORS,
    ChangedFieldsOnlyMixin,
    HuntFixedMixin,
    ReadOnlyAdminMixin,
    ServiceAdminMixin,
    ServiceForm,
    error_message,
)

from . import operations
from .authoring import refresh_puzzle_flags, treasure_code_key
from .forms import AnswerForm, AnswerFormSet, HintForm, HintRequestAnswerForm, PuzzleForm, TreasureForm
from .models import (
    Answer,
    Erratum,
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
from .services import correct_clue

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
    actions = ("rejudge", "unlock_for_all", "lock_for_all")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Answers and prerequisites are saved only now: the flags depend on both.
        refresh_puzzle_flags(form.instance)
        answers_changed = any(fs.model is Answer and fs.has_changed() for fs in formsets)
        if change and answers_changed and form.instance.guesses.exists():
            self.message_user(
                request,
                "The answers changed, but guesses already judged keep their verdicts: run the "
                "“Re-judge guesses” action on this puzzle to preview and apply the new answers.",
                messages.WARNING,
            )

    @admin.action(description="Re-judge guesses against the current answers (preview, then apply)")
    def rejudge(self, request, queryset):
        puzzles = list(queryset.select_related("hunt"))
        if "apply" in request.POST:
            try:
                with transaction.atomic():
                    plans = [operations.rejudge_apply(puzzle=p, staff=request.user) for p in puzzles]
            except SERVICE_ERRORS as exc:
                self.message_user(request, error_message(exc), messages.ERROR)
                return None
            for plan in plans:
                self.message_user(
                    request,
                    f"Re-judged {plan.puzzle.title}: {len(plan.guesses)} verdict(s) changed, "
                    f"{len(plan.gains)} solve(s) gained, {len(plan.losses)} lost.",
                    messages.SUCCESS,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Re-judge guesses",
            "opts": self.model._meta,
            "queryset": queryset,
            "plans": [operations.rejudge_preview(puzzle=p) for p in puzzles],
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/puzzles/puzzle/rejudge.html", context)

    def _for_all(self, request, queryset, *, lock: bool) -> None:
        service = operations.lock_puzzle if lock else operations.unlock_puzzle
        try:
            with transaction.atomic():
                counts = [(p, service(puzzle=p, staff=request.user)) for p in queryset.select_related("hunt")]
        except SERVICE_ERRORS as exc:
            self.message_user(request, error_message(exc), messages.ERROR)
            return
        verb = "re-locked for" if lock else "unlocked for"
        for puzzle, count in counts:
            self.message_user(request, f"{puzzle.title} {verb} {count} team(s).", messages.SUCCESS)

    @admin.action(description="Unlock for every team", permissions=["change"])
    def unlock_for_all(self, request, queryset):
        self._for_all(request, queryset, lock=False)

    @admin.action(description="Re-lock for every team that has not solved it", permissions=["change"])
    def lock_for_all(self, request, queryset):
        self._for_all(request, queryset, lock=True)


class TreasureFindInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TreasureFind
    fields = ("rank", "team", "found_at", "points")
    readonly_fields = fields
    extra = 0


@admin.register(Treasure)
class TreasureAdmin(ChangedFieldsOnlyMixin, HuntFixedMixin, admin.ModelAdmin):
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

    def changed_model_fields(self, form) -> list[str]:
        fields = super().changed_model_fields(form)
        fields = [*fields, "code_key"] if "code" in fields else fields
        if "clue" in fields:  # in the change view's transaction
            fields += correct_clue(form.instance, form.initial.get("clue") or "")
        return fields

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
    list_display = ("solved_at", "team", "puzzle", "points", "post_hunt")
    list_filter = ("puzzle__hunt", "post_hunt", "puzzle")
    list_select_related = ("team", "puzzle")
    search_fields = ("team__name", "puzzle__title")
    date_hierarchy = "solved_at"


@admin.register(Unlock)
class UnlockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: unlock and re-lock with the actions on puzzles and teams (they log and push)."""

    list_display = ("unlocked_at", "team", "puzzle", "locked")
    list_filter = ("puzzle__hunt", "locked", "puzzle")
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


class ErratumForm(ServiceForm):
    """Posting is post_erratum, changing the text edit_erratum: both push erratum.posted."""

    class Meta:
        model = Erratum
        fields = ("puzzle", "text")
        widgets = {"text": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def call_service(self, data: dict) -> Erratum:
        if self.instance.pk:
            return operations.edit_erratum(erratum=self.instance, text=data["text"], staff=self.request.user)
        return operations.post_erratum(puzzle=data["puzzle"], text=data["text"], staff=self.request.user)


@admin.register(Erratum)
class ErratumAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Errata are pushed to the players when posted, and again when their text changes; never deleted
    (players have seen them: correct the text instead)."""

    form = ErratumForm
    list_display = ("created_at", "puzzle", "text", "updated_at")
    list_filter = ("puzzle__hunt",)
    list_select_related = ("puzzle",)
    search_fields = ("text", "puzzle__title")
    readonly_fields = ("created_at", "updated_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            form.base_fields["puzzle"].disabled = True
        return form

    def has_delete_permission(self, request, obj=None):
        return False
