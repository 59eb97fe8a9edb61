"""Forms of the player and staff pages: they parse input; the services hold the rules and their messages."""

from django import forms

from hunts.services import ANNOUNCEMENT_MAX, JOIN_CODE_LENGTH, TEAM_NAME_MAX
from puzzles.services import GUESS_MAX, QUESTION_MAX


class TeamCreateForm(forms.Form):
    name = forms.CharField(
        label="Team name",
        max_length=TEAM_NAME_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
    )


class TeamJoinForm(forms.Form):
    join_code = forms.CharField(
        label="Join code",
        # Hyphens and spaces are allowed in what players type: the service reads codes leniently.
        max_length=JOIN_CODE_LENGTH * 2,
        help_text="The 8-character code a teammate sees on the hunt page.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )


class GuessForm(forms.Form):
    answer = forms.CharField(
        label="Your answer",
        max_length=GUESS_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class HintRequestForm(forms.Form):
    question = forms.CharField(
        label="Ask the organizers",
        max_length=QUESTION_MAX,
        help_text="Say what you tried; an organizer answers here.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class TreasureClaimForm(forms.Form):
    code = forms.CharField(
        label="Treasure code",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class AnnouncementForm(forms.Form):
    text = forms.CharField(
        label="Announcement", max_length=ANNOUNCEMENT_MAX, widget=forms.Textarea(attrs={"rows": 3})
    )


class HintAnswerForm(forms.Form):
    answer = forms.CharField(label="Answer", widget=forms.Textarea(attrs={"rows": 2}))
