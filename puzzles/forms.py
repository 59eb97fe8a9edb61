"""Admin forms for authoring: answer parameters are checked by their checker, choices stay inside one hunt."""

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models

from hunts.admin import ServiceForm
from hunts.models import Hunt

from .authoring import treasure_code_key
from .checkers import CHECKERS, clean_answer
from .models import Answer, Hint, HintRequest, Puzzle, Treasure
from .services import answer_hint_request


def _parameters_help() -> str:
    kinds = "; ".join(
        f"{kind} {{{', '.join(f.name if f.required else f'{f.name}?' for f in checker.fields)}}}"
        for kind, checker in CHECKERS.items()
    )
    return f'A JSON object, e.g. {{"value": "BRIGHT BEAM"}}. Fields by kind (? = optional): {kinds}.'


class AnswerForm(forms.ModelForm):
    class Meta:
        model = Answer
        fields = ("kind", "parameters", "final", "response", "order")
        widgets = {
            "parameters": forms.Textarea(attrs={"rows": 2, "cols": 48}),
            "response": forms.TextInput(attrs={"size": 30}),
        }
        help_texts = {"parameters": _parameters_help()}

    def clean(self):
        """Check the parameters with the kind's checker and keep its normalized form (defaults filled in)."""
        cleaned_data = super().clean()
        kind, parameters = cleaned_data.get("kind"), cleaned_data.get("parameters")
        if kind is None or parameters is None:
            return cleaned_data  # the field already has its error
        try:
            cleaned_data["parameters"] = clean_answer(kind, parameters)
        except ValidationError as exc:
            for key, errors in exc.update_error_dict({}).items():
                if key in ("kind", "parameters"):
                    self.add_error(key, errors)
                else:
                    messages = [m for error in errors for m in error.messages]
                    where = "parameters" if key == NON_FIELD_ERRORS else key
                    self.add_error("parameters", [f"{where}: {m}" for m in messages])
        return cleaned_data


class AnswerFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if not any(data.get("final") for data in kept):
            raise ValidationError("A puzzle needs at least one final answer (one that solves it).")


class HintForm(forms.ModelForm):
    class Meta:
        model = Hint
        fields = ("order", "text", "after_minutes", "cost")
        widgets = {"text": forms.Textarea(attrs={"rows": 2, "cols": 60})}


def _hunt_of(form: forms.ModelForm) -> int | None:
    """The hunt the form's object is in, when already known (a saved object, or ?hunt= on an add page)."""
    if form.instance.pk:
        return form.instance.hunt_id
    if form.is_bound:
        return None  # the hunt may have been changed in the form: clean() checks the choices
    initial = form.initial.get("hunt")
    try:
        return int(getattr(initial, "pk", initial))
    except (TypeError, ValueError):
        return None


def limit_to_hunt(form: forms.ModelForm, *field_names: str) -> None:
    """Offer only objects of the form's hunt; when it is not known yet, label each choice with its hunt."""
    hunt_id = _hunt_of(form)
    for name in field_names:
        field = form.fields.get(name)
        if field is None:
            continue
        if hunt_id is not None:
            field.queryset = field.queryset.filter(hunt_id=hunt_id)
        else:
            field.queryset = field.queryset.select_related("hunt")
            field.label_from_instance = lambda obj: f"{obj.hunt.slug} / {obj}"


def check_same_hunt(form: forms.ModelForm, hunt: Hunt | None, name: str) -> None:
    """Add an error to `name` when any object chosen in it belongs to another hunt."""
    chosen = form.cleaned_data.get(name)
    if hunt is None or chosen is None:
        return
    chosen = [chosen] if isinstance(chosen, models.Model) else list(chosen)
    others = [str(obj) for obj in chosen if obj.hunt_id != hunt.pk]
    if others:
        form.add_error(name, f"Not in the hunt {hunt}: {', '.join(others)}. Choose from this hunt only.")


class PuzzleForm(forms.ModelForm):
    class Meta:
        model = Puzzle
        fields = (
            "hunt",
            "round",
            "title",
            "slug",
            "order",
            "points",
            "meta",
            "body",
            "solution",
            "unlock_after_minutes",
            "unlock_solves",
            "unlock_round_solves",
            "prerequisites",
            "unlock_needed",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit_to_hunt(self, "round", "prerequisites")
        if self.instance.pk and "prerequisites" in self.fields:
            self.fields["prerequisites"].queryset = self.fields["prerequisites"].queryset.exclude(
                pk=self.instance.pk
            )

    def clean(self):
        cleaned_data = super().clean()
        hunt = cleaned_data.get("hunt")
        check_same_hunt(self, hunt, "round")
        check_same_hunt(self, hunt, "prerequisites")
        prerequisites = cleaned_data.get("prerequisites")
        if prerequisites is None:
            return cleaned_data
        if self.instance.pk in {p.pk for p in prerequisites}:
            self.add_error("prerequisites", "A puzzle cannot be its own prerequisite.")
        # As the hunt file reader does, so that whatever the admin saves also exports and imports.
        needed, count = cleaned_data.get("unlock_needed"), len(prerequisites)
        if needed is not None and not count:
            self.add_error(
                "unlock_needed", "Only means something with prerequisites: choose some, or clear this."
            )
        elif needed is not None and not 1 <= needed <= count:
            self.add_error("unlock_needed", f"Must be from 1 to the number of prerequisites ({count}).")
        return cleaned_data


class TreasureForm(forms.ModelForm):
    class Meta:
        model = Treasure
        fields = (
            "hunt",
            "slug",
            "name",
            "order",
            "teaser",
            "reveal",
            "requires",
            "code",
            "supply",
            "bonus",
            "clue",
            "clue_at",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit_to_hunt(self, "requires")

    def clean_bonus(self):
        bonus = self.cleaned_data.get("bonus")
        if bonus is None:
            return []
        # bool is an int subclass (and YAML's `yes`): refuse it.
        if not isinstance(bonus, list) or any(type(points) is not int or points < 0 for points in bonus):
            raise ValidationError("Enter a list of whole numbers >= 0, by finder rank, e.g. [50, 30, 10].")
        return bonus

    def clean_supply(self):
        supply = self.cleaned_data.get("supply")
        found = self.instance.found_count
        if supply is not None and supply < found:
            raise ValidationError(
                f"{found} team(s) already found this treasure: the supply cannot be below that."
            )
        return supply

    def clean(self):
        """How a treasure is found, checked as the hunt file reader does (so the hunt exports and imports)."""
        cleaned_data = super().clean()
        hunt, code, requires = (
            cleaned_data.get("hunt"),
            cleaned_data.get("code"),
            cleaned_data.get("requires"),
        )
        check_same_hunt(self, hunt, "requires")
        if code and not treasure_code_key(code):
            self.add_error("code", "Must contain at least one letter or digit.")
        elif code and hunt:
            twin = Treasure.objects.filter(hunt=hunt, code_key=treasure_code_key(code)).exclude(
                pk=self.instance.pk
            )
            if twin.exists():
                self.add_error("code", f"Same code as the treasure “{twin.first()}”.")
        if "code" in cleaned_data and requires is not None and not code and not requires:
            self.add_error(
                None,
                "A treasure needs required puzzles (solving them finds it), a code (to claim it), or both.",
            )
        return cleaned_data


class HintRequestAnswerForm(ServiceForm):
    """Staff's answer to a team's question, saved by answer_hint_request (status, event, push)."""

    class Meta:
        model = HintRequest
        fields = ("answer",)
        widgets = {"answer": forms.Textarea(attrs={"rows": 6, "cols": 80})}

    def call_service(self, data: dict) -> HintRequest:
        return answer_hint_request(
            request_id=self.instance.pk, staff=self.request.user, answer=data["answer"]
        )
