"""Admin for the event and its people: hunts, teams, announcements and the event log.

Anything that changes state the players see goes through a service (hunts.services), never a
plain model save: see ServiceForm.
"""

import contextlib
import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models.functions import Lower
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.http import content_disposition_header

from puzzles import exports
from puzzles import operations as puzzle_operations
from puzzles.models import Puzzle, Round

from . import operations, services
from .errors import Conflict, NotFound, RateLimited
from .models import Announcement, Event, Hunt, Membership, Team

SERVICE_ERRORS = (ValidationError, PermissionDenied, NotFound, Conflict, RateLimited)


def error_message(exc: Exception) -> str:
    """A service error as one line for the admin's message bar."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return getattr(exc, "message", None) or str(exc)


def add_service_error(form: forms.Form, exc: Exception) -> None:
    """Show a service's error on the form: per field where the form has that field, else above it."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error_message(exc))


class ServiceForm(forms.ModelForm):
    """A model form whose save is one service call.

    The call replaces the model validation step (as UserCreationForm extends _post_clean): it
    runs once the fields are clean, inside the admin's transaction, so a rule the service
    refuses shows as a form error, and the model's checks never run against a state the
    service has already changed. ServiceAdminMixin then keeps the service's result instead
    of saving the form's instance.
    """

    request = None  # set by ServiceAdminMixin.get_form
    result = None

    def call_service(self, data: dict):
        raise NotImplementedError

    def _post_clean(self):
        if self.errors:
            return
        try:
            self.result = self.call_service(self.cleaned_data)
        except SERVICE_ERRORS as exc:
            add_service_error(self, exc)


class ServiceAdminMixin:
    """For ModelAdmins whose forms may be ServiceForms (see there): the service has saved already."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if issubclass(form, ServiceForm):
            form = type(form.__name__, (form,), {"request": request})
        return form

    def save_form(self, request, form, change):
        if isinstance(form, ServiceForm):
            return form.result
        return super().save_form(request, form, change)

    def save_model(self, request, obj, form, change):
        if not isinstance(form, ServiceForm):
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if not isinstance(form, ServiceForm):
            super().save_related(request, form, formsets, change)


class HuntFixedMixin:
    """An object never moves to another hunt once created.

    The hunt stays in the form, disabled rather than read-only, so that the per-hunt unique
    constraints (slug, title, team name) are still validated as form errors.
    """

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and "hunt" in form.base_fields:
            form.base_fields["hunt"].disabled = True
        return form


class ChangedFieldsOnlyMixin:
    """On change, save only the model fields the form changed.

    Counters and heads that services keep under row locks (event_seq, score, found_count, ...) are never
    written back from a form loaded earlier: a plain save would roll them back during a live hunt.
    """

    def changed_model_fields(self, form) -> list[str]:
        concrete = {f.name for f in form.instance._meta.concrete_fields}
        return [name for name in form.changed_data if name in concrete]  # m2m: save_related

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        fields = self.changed_model_fields(form)
        if fields:
            obj.save(update_fields=fields)
        return None


class ActionForm(forms.Form):
    """The form of an admin action's intermediate page (action_page)."""


def action_page(modeladmin, request, queryset, *, form_class, title: str, intro: str, submit: str, apply):
    """An admin action that asks for input on an intermediate page, then calls `apply(data, objects)`.

    `apply` calls the services (in one transaction: all or nothing) and returns the success message, or
    a response (a file download). A refused rule shows on the page as a form error.
    """
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        try:
            with transaction.atomic():
                result = apply(form.cleaned_data, list(queryset))
        except SERVICE_ERRORS as exc:
            add_service_error(form, exc)
        else:
            if isinstance(result, HttpResponse):
                return result
            modeladmin.message_user(request, result, messages.SUCCESS)
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "submit": submit,
        "opts": modeladmin.model._meta,
        "queryset": queryset,
        "form": form,
        "action": request.POST.get("action", ""),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/action_page.html", context)


class ReadOnlyAdminMixin:
    """A log: staff can look, filter and search, never add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Hunts ----------------------------------------------------------------------------------


class HuntForm(forms.ModelForm):
    def clean(self):
        cleaned_data = super().clean()
        starts_at, ends_at = cleaned_data.get("starts_at"), cleaned_data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "The hunt must end after it starts.")
        return cleaned_data


class RoundInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        for form in self.deleted_forms:
            # Deleting a round here would silently delete its puzzles and every guess on them.
            if form.instance.pk and form.instance.puzzles.exists():
                raise ValidationError(
                    f"Round “{form.instance}” still has puzzles: move or delete them first "
                    "(the puzzle admin shows what a deletion would remove)."
                )


class RoundInline(admin.TabularInline):
    model = Round
    formset = RoundInlineFormSet
    fields = ("title", "order")
    extra = 0
    show_change_link = True


class AnnouncementInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Announcements already posted; new ones go through the "Post announcement" action, which pushes them."""

    model = Announcement
    fields = ("created_at", "text")
    readonly_fields = fields
    extra = 0
    verbose_name_plural = "announcements (post new ones with the “Post announcement” action)"


class AnnouncementTextForm(forms.Form):
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        required=False,  # the service says what is wrong with the text
        max_length=services.ANNOUNCEMENT_MAX,
        help_text="Shown at once to every player of the hunt.",
    )


class MoveEndForm(ActionForm):
    extend_minutes = forms.IntegerField(
        required=False, help_text="Move the end by this many minutes (negative: earlier)."
    )
    ends_at = forms.DateTimeField(required=False, help_text="Or the new end, UTC (YYYY-MM-DD HH:MM).")


class ExportForm(ActionForm):
    what = forms.ChoiceField(choices=[(w, w) for w in exports.WHATS])
    format = forms.ChoiceField(choices=[(f, f.upper()) for f in exports.FORMATS])


@admin.register(Hunt)
class HuntAdmin(ChangedFieldsOnlyMixin, admin.ModelAdmin):
    form = HuntForm
    list_display = ("title", "slug", "starts_at", "ends_at", "state", "published")
    list_filter = ("published",)
    search_fields = ("title", "slug")
    date_hierarchy = "starts_at"
    prepopulated_fields = {"slug": ("title",)}
    readonly_fields = ("event_seq", "announced_state", "created_at")
    fieldsets = (
        (None, {"fields": ("title", "slug", "intro", "published")}),
        ("Schedule", {"fields": ("starts_at", "ends_at")}),
        (
            "Teams and guesses",
            {
                "fields": (
                    "max_team_size",
                    "guess_limit_guesses",
                    "guess_limit_minutes",
                    "max_open_hint_requests",
                    "freeze_minutes",
                )
            },
        ),
        ("Live state", {"fields": ("event_seq", "announced_state", "created_at")}),
    )
    inlines = (RoundInline, AnnouncementInline)
    actions = ("post_announcement", "move_end", "export_results", "export_hunt_file")

    def save_model(self, request, obj, form, change):
        """A moved end goes through move_hunt_end (hunt.rescheduled, the clock re-plans)."""
        old_end = form.initial.get("ends_at")
        moving = change and "ends_at" in form.changed_data and obj.starts_at < old_end
        if moving:
            new_end, obj.ends_at = obj.ends_at, old_end
            form.changed_data.remove("ends_at")
        super().save_model(request, obj, form, change)
        if moving:
            moved = operations.move_hunt_end(hunt=obj, ends_at=new_end, staff=request.user)
            obj.ends_at, obj.announced_state = moved.ends_at, moved.announced_state

    @admin.action(description="Move the end of the selected hunt", permissions=["change"])
    def move_end(self, request, queryset):
        def apply(data, hunts):
            moved = [
                operations.move_hunt_end(
                    hunt=hunt,
                    staff=request.user,
                    ends_at=data["ends_at"],
                    extend_minutes=data["extend_minutes"],
                )
                for hunt in hunts
            ]
            return "New end: " + ", ".join(f"{h.title} {h.ends_at:%Y-%m-%d %H:%M} UTC" for h in moved)

        return action_page(
            self,
            request,
            queryset,
            form_class=MoveEndForm,
            title="Move the end",
            intro="The clock re-plans at once: the leaderboard freeze moves with the end, an end in the "
            "past is announced within seconds, and an ended hunt whose end moves into the future reopens. "
            "Players get hunt.rescheduled.",
            submit="Move the end",
            apply=apply,
        )

    @admin.action(description="Export results, solves, finds or guesses (CSV, JSON)")
    def export_results(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one hunt to export.", messages.WARNING)
            return None

        def apply(data, hunts):
            hunt, what, fmt = hunts[0], data["what"], data["format"]
            response = HttpResponse(exports.render(hunt, what, fmt), content_type=exports.CONTENT_TYPES[fmt])
            response["Content-Disposition"] = content_disposition_header(
                True, exports.filename(hunt, what, fmt)
            )
            return response

        return action_page(
            self,
            request,
            queryset,
            form_class=ExportForm,
            title="Export",
            intro="Staff exports include hidden teams and guesses sent after the end. For very large "
            "hunts use manage.py export_results.",
            submit="Download",
            apply=apply,
        )

    @admin.display(description="state")
    def state(self, hunt: Hunt) -> str:
        return hunt.state

    def has_post_announcement_permission(self, request) -> bool:
        return request.user.has_perm("hunts.add_announcement")

    @admin.action(description="Post announcement to the selected hunts", permissions=["post_announcement"])
    def post_announcement(self, request, queryset):
        """Ask for the text (an intermediate page), then post it through the service."""
        form = AnnouncementTextForm(request.POST if "post" in request.POST else None)
        if form.is_bound and form.is_valid():
            hunts = list(queryset)
            try:
                with transaction.atomic():
                    for hunt in hunts:
                        services.post_announcement(
                            hunt=hunt, text=form.cleaned_data["text"], user=request.user
                        )
            except SERVICE_ERRORS as exc:
                add_service_error(form, exc)
            else:
                names = ", ".join(hunt.title for hunt in hunts)
                self.message_user(request, f"Announcement posted to {names}.", messages.SUCCESS)
                return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Post announcement",
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/hunts/hunt/post_announcement.html", context)

    @admin.action(description="Export hunt file (YAML)")
    def export_hunt_file(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one hunt to export.", messages.WARNING)
            return None
        # Imported here: hunt files belong to puzzles, which depends on hunts, not the reverse.
        from puzzles.authoring import dump_hunt

        hunt = queryset.get()
        response = HttpResponse(dump_hunt(hunt), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = content_disposition_header(True, f"{hunt.slug}.yaml")
        return response


# --- Teams ----------------------------------------------------------------------------------


class MembershipInlineFormSet(forms.BaseInlineFormSet):
    staff = None  # set per request by MembershipInline.get_formset

    def save(self, commit=True):
        """Removing a member goes through remove_member (event, closed sockets); nothing else changes here."""
        self.new_objects = []
        self.save_existing_objects(commit=False)  # collects deleted_objects without deleting
        for member in self.deleted_objects:
            with contextlib.suppress(NotFound):  # they left in the meantime
                operations.remove_member(hunt=member.team.hunt, user=member.user, staff=self.staff)
        return []


class MembershipInline(admin.TabularInline):
    """Members; players join with the team's join code. Removing one here is remove_member."""

    model = Membership
    formset = MembershipInlineFormSet
    fields = ("user", "joined_at")
    readonly_fields = fields
    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        return type(formset.__name__, (formset,), {"staff": request.user})

    def has_add_permission(self, request, obj=None):
        return False


class TeamCreateForm(ServiceForm):
    """A new team, created by create_team with its first member (e.g. a staff testsolving team)."""

    first_member = forms.CharField(label="First member (username)", max_length=150)

    class Meta:
        model = Team
        fields = ("hunt", "name", "hidden")

    def clean_first_member(self):
        username = self.cleaned_data["first_member"].strip()
        user = get_user_model()._default_manager.filter(username=username).first()
        if user is None:
            raise ValidationError(f"No user named “{username}”.")
        return user

    def call_service(self, data: dict) -> Team:
        team = services.create_team(hunt=data["hunt"], user=data["first_member"], name=data["name"])
        if data["hidden"]:
            team.hidden = True
            team.save(update_fields=["hidden"])
        return team


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ("hunt", "name", "hidden")

    def clean_name(self):
        name = services.clean_team_name(self.cleaned_data["name"])
        hunt_id = self.instance.hunt_id
        taken = Team.objects.annotate(lname=Lower("name")).filter(hunt_id=hunt_id, lname=name.lower())
        if taken.exclude(pk=self.instance.pk).exists():
            raise ValidationError(f"A team named {name} already exists in this hunt.")
        return name


class AdjustScoreForm(ActionForm):
    points = forms.IntegerField(help_text="Negative to take points.")
    reason = forms.CharField(max_length=500, required=False, help_text="The team sees it.")


class PuzzleChoiceForm(ActionForm):
    puzzle = forms.ModelChoiceField(queryset=None)

    def __init__(self, *args, hunt_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["puzzle"].queryset = Puzzle.objects.filter(hunt_id__in=hunt_ids).select_related(
            "hunt", "round"
        )


@admin.register(Team)
class TeamAdmin(ServiceAdminMixin, ChangedFieldsOnlyMixin, HuntFixedMixin, admin.ModelAdmin):
    form = TeamForm
    add_form = TeamCreateForm
    list_display = ("name", "hunt", "score", "solve_count", "hidden", "created_at")
    list_filter = ("hunt", "hidden")
    list_select_related = ("hunt",)
    search_fields = ("name", "slug", "memberships__user__username")
    readonly_fields = (
        "slug",
        "join_code",
        "score",
        "solve_count",
        "last_scored_at",
        "event_seq",
        "created_at",
    )
    inlines = (MembershipInline,)
    actions = (
        "rotate_join_code",
        "hide_teams",
        "unhide_teams",
        "adjust_score",
        "unlock_puzzle",
        "lock_puzzle",
    )

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("hunt", "name", "first_member", "hidden")
        return ("hunt", "name", "hidden", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return () if obj is None else self.inlines

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.action(description="Rotate join code", permissions=["change"])
    def rotate_join_code(self, request, queryset):
        rotated = 0
        for team in queryset:
            try:
                services.rotate_join_code(team=team)
            except SERVICE_ERRORS as exc:
                self.message_user(request, f"{team}: {error_message(exc)}", messages.ERROR)
            else:
                rotated += 1
        if rotated:
            self.message_user(request, f"New join code for {rotated} team(s).", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        """Hiding or showing a team goes through set_team_hidden (event, leaderboard)."""
        hiding = change and not isinstance(form, ServiceForm) and "hidden" in form.changed_data
        if hiding:
            form.changed_data.remove("hidden")
        super().save_model(request, obj, form, change)
        if hiding:
            operations.set_team_hidden(team=obj, hidden=obj.hidden, staff=request.user)

    def _set_hidden(self, request, queryset, hidden: bool) -> None:
        with transaction.atomic():
            for team in queryset:
                operations.set_team_hidden(team=team, hidden=hidden, staff=request.user)
        where = "hidden from" if hidden else "shown in"
        self.message_user(request, f"{queryset.count()} team(s) {where} the rankings.", messages.SUCCESS)

    @admin.action(description="Hide from the rankings", permissions=["change"])
    def hide_teams(self, request, queryset):
        self._set_hidden(request, queryset, True)

    @admin.action(description="Show in the rankings", permissions=["change"])
    def unhide_teams(self, request, queryset):
        self._set_hidden(request, queryset, False)

    @admin.action(description="Adjust the score of the selected teams", permissions=["change"])
    def adjust_score(self, request, queryset):
        def apply(data, teams):
            for team in teams:
                puzzle_operations.adjust_score(
                    team=team, points=data["points"], reason=data["reason"], staff=request.user
                )
            return f"{data['points']:+d} points for {', '.join(t.name for t in teams)}."

        return action_page(
            self,
            request,
            queryset,
            form_class=AdjustScoreForm,
            title="Adjust score",
            intro="Each team gets score.adjusted with the reason, live. A raise moves its tie-break time.",
            submit="Adjust score",
            apply=apply,
        )

    def _puzzle_action(self, request, queryset, *, lock: bool):
        service = puzzle_operations.lock_puzzle if lock else puzzle_operations.unlock_puzzle
        hunt_ids = set(queryset.values_list("hunt_id", flat=True))

        def apply(data, teams):
            count = sum(service(puzzle=data["puzzle"], staff=request.user, team=team) for team in teams)
            verb = "re-locked for" if lock else "unlocked for"
            return f"{data['puzzle'].title} {verb} {count} team(s)."

        return action_page(
            self,
            request,
            queryset,
            form_class=functools.partial(PuzzleChoiceForm, hunt_ids=hunt_ids),
            title="Re-lock a puzzle" if lock else "Unlock a puzzle",
            intro="Re-locked: hidden from the team until staff unlock it again (a team that solved it "
            "keeps it)."
            if lock
            else "Unlocked: open for the team whatever its rules (this also undoes a re-lock).",
            submit="Re-lock" if lock else "Unlock",
            apply=apply,
        )

    @admin.action(description="Unlock a puzzle for the selected teams", permissions=["change"])
    def unlock_puzzle(self, request, queryset):
        return self._puzzle_action(request, queryset, lock=False)

    @admin.action(description="Re-lock a puzzle for the selected teams", permissions=["change"])
    def lock_puzzle(self, request, queryset):
        return self._puzzle_action(request, queryset, lock=True)


# --- Announcements and the event log --------------------------------------------------------


class AnnouncementForm(ServiceForm):
    class Meta:
        model = Announcement
        fields = ("hunt", "text")
        widgets = {"text": forms.Textarea(attrs={"rows": 5, "cols": 80})}

    def call_service(self, data: dict) -> Announcement:
        return services.post_announcement(hunt=data["hunt"], text=data["text"], user=self.request.user)


@admin.register(Announcement)
class AnnouncementAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Posted announcements are a log; a new one is posted (and pushed) by post_announcement."""

    form = AnnouncementForm
    list_display = ("created_at", "hunt", "text")
    list_filter = ("hunt",)
    list_select_related = ("hunt",)
    search_fields = ("text",)
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "hunt", "team", "seq", "kind")
    list_filter = ("hunt", "kind")
    list_select_related = ("hunt", "team")
    search_fields = ("kind", "team__name")
    date_hierarchy = "created_at"
    show_full_result_count = False  # the log grows large; skip the unfiltered COUNT(*)
