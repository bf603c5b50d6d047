"""Pages of the browser GUI; the site root is the dashboard."""

from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from labmgr.web import views
from labmgr.web.calendar import views as calendar

urlpatterns = [
    path("", views.dashboard, name="home"),
    path("status.json", views.dashboard_status, name="web-status"),
    # For what links no icon of its own (the browsable API, a JSON answer): browsers ask here.
    path("favicon.ico", RedirectView.as_view(url=static("web/favicon.svg"), permanent=True)),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("examples/", views.examples, name="web-examples"),
    path("images/", views.images, name="web-images"),
    path("examples/<slug:name>/copy", views.example_copy, name="web-example-copy"),
    path("labs/new/", views.lab_new, name="web-lab-new"),
    path("labs/validate", views.labfile_check, name="web-validate"),
    path("labs/<int:pk>/", views.lab_detail, name="web-lab"),
    path("labs/<int:pk>/edit/", views.lab_edit, name="web-lab-edit"),
    path("labs/<int:pk>/topology/", views.lab_topology, name="web-lab-topology"),
    path("labs/<int:pk>/terminals/", views.lab_terminals, name="web-lab-terminals"),
    path("labs/<int:pk>/delete", views.lab_delete, name="web-lab-delete"),
    path("drafts/<int:pk>/", views.draft_edit, name="web-draft"),
    path("calendar/", calendar.calendar_home, name="web-calendar-home"),
    path("calendar/<int:pk>/", calendar.host_calendar, name="web-calendar"),
    path(
        "calendar/reservations/<int:pk>/",
        calendar.reservation_action,
        name="web-reservation-action",
    ),
    path("drafts/<int:pk>/discard", views.draft_discard, name="web-draft-discard"),
]
