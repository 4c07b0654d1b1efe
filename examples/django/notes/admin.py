"""Notes in the Django admin, for staff Gatehouse signed in."""
from django.contrib import admin

from .models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ("text", "owner", "created")
    list_filter = ("owner",)
    search_fields = ("text",)
