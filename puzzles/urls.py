from django.urls import path

from . import views

app_name = "puzzles"

urlpatterns = [
    path("hunts/<slug:hunt>/puzzles/<slug:puzzle>/", views.puzzle_detail, name="detail"),
    path("hunts/<slug:hunt>/puzzles/<slug:puzzle>/guess/", views.puzzle_guess, name="guess"),
    path(
        "hunts/<slug:hunt>/puzzles/<slug:puzzle>/hints/<int:hint_id>/unlock/",
        views.hint_unlock,
        name="hint_unlock",
    ),
    path("hunts/<slug:hunt>/puzzles/<slug:puzzle>/questions/", views.hint_request, name="hint_request"),
    path("hunts/<slug:hunt>/treasures/", views.treasure_list, name="treasures"),
    path("hunts/<slug:hunt>/treasures/claim/", views.treasure_claim, name="treasure_claim"),
    path("hunts/<slug:hunt>/leaderboard/", views.leaderboard_view, name="leaderboard"),
]
