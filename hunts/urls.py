from django.urls import path

from . import spectators, staff_controls, views

app_name = "hunts"

urlpatterns = [
    path("", views.hunt_list, name="list"),
    path("hunts/<slug:hunt>/", views.hunt_detail, name="detail"),
    path("hunts/<slug:hunt>/team/new/", views.team_create, name="team_create"),
    path("hunts/<slug:hunt>/team/join/", views.team_join, name="team_join"),
    path("hunts/<slug:hunt>/team/leave/", views.team_leave, name="team_leave"),
    path("hunts/<slug:hunt>/spectate/", spectators.spectate, name="spectate"),
    path("staff/hunts/<slug:hunt>/", views.staff_view, name="staff"),
    path("staff/hunts/<slug:hunt>/announcements/", views.staff_announce, name="staff_announce"),
    path(
        "staff/hunts/<slug:hunt>/controls/<slug:control>/", staff_controls.staff_control, name="staff_control"
    ),
    path(
        "staff/hunts/<slug:hunt>/puzzles/<slug:puzzle>/rejudge/",
        staff_controls.staff_rejudge,
        name="staff_rejudge",
    ),
    path(
        "staff/hunts/<slug:hunt>/hint-requests/<int:request_id>/answer/",
        views.staff_answer_hint,
        name="staff_answer_hint",
    ),
]
