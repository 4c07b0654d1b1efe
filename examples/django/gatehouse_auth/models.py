"""The link between a Django user and a Gatehouse identity."""
from django.conf import settings
from django.db import models


class Identity(models.Model):
    """Ties a Django user to the ``sub`` claim of Gatehouse's tokens.

    Users are found by ``sub`` only, never by username or email, so a local
    account that happens to share a name with someone at the identity
    provider is never handed to them.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gatehouse_identity"
    )
    sub = models.CharField(max_length=255, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.sub} -> {self.user_id}"
