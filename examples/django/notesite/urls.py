"""URLs: the single page, its script, the notes form, the DRF API and the admin."""
from django.contrib import admin
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.generic import RedirectView

from notes import views

# API answers are personal: no cache may keep them, so the back button after
# sign-out cannot show them again.
urlpatterns = [
    path("", views.index, name="index"),
    path("app.js", views.app_js, name="app-js"),
    path("notes/new", never_cache(views.NoteFormView.as_view()), name="note-form"),
    path("api/whoami", never_cache(views.WhoAmIView.as_view()), name="whoami"),
    path("api/notes", never_cache(views.NoteListView.as_view()), name="notes"),
    # Signed in by Gatehouse (GatehouseUserMiddleware, staff by group), so
    # the admin's "Log out" ends the session that counts: Gatehouse's.
    path("admin/logout/", RedirectView.as_view(url="/oauth2/sign_out?rd=/admin/")),
    path("admin/", admin.site.urls),
]
