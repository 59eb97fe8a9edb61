"""Forms of the staff live view's controls: they parse input; the services hold the rules and messages."""

from django import forms

from puzzles.operations import ERRATUM_MAX, REASON_MAX


class TeamField(forms.SlugField):
    def __init__(self, **kwargs):
        super().__init__(max_length=60, **kwargs)


class PuzzleTeamForm(forms.Form):
    puzzle = forms.SlugField(max_length=60)
    team = TeamField(required=False, help_text="Empty: every team.")


class TeamOnlyForm(forms.Form):
    team = TeamField()


class ScoreAdjustForm(forms.Form):
    team = TeamField()
    points = forms.IntegerField()
    reason = forms.CharField(max_length=REASON_MAX, required=False)


class RemoveMemberForm(forms.Form):
    username = forms.CharField(max_length=150)


class MoveEndForm(forms.Form):
    extend_minutes = forms.IntegerField(required=False)
    ends_at = forms.DateTimeField(required=False, help_text="UTC, e.g. 2026-12-03 18:30.")


class ErratumForm(forms.Form):
    puzzle = forms.SlugField(max_length=60)
    text = forms.CharField(max_length=ERRATUM_MAX, required=False)
