"""The link between Django users and Gatehouse identities, read-only in the admin."""
from django.contrib import admin

from .models import Identity


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ("sub", "user", "created")
    search_fields = ("sub", "user__username")
    # Only a verified token creates the link; editing it by hand would hand
    # one person's account to another.
    readonly_fields = ("sub", "user", "created")

    def has_add_permission(self, request):
        return False
