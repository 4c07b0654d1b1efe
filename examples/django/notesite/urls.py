"""URLs: the single page, its script, the notes form and the DRF API."""
from django.urls import path
from django.views.decorators.cache import never_cache

from notes import views

# API answers are personal: no cache may keep them, so the back button after
# sign-out cannot show them again.
urlpatterns = [
    path("", views.index, name="index"),
    path("app.js", views.app_js, name="app-js"),
    path("notes/new", never_cache(views.NoteFormView.as_view()), name="note-form"),
    path("api/whoami", never_cache(views.WhoAmIView.as_view()), name="whoami"),
    path("api/notes", never_cache(views.NoteListView.as_view()), name="notes"),
]
