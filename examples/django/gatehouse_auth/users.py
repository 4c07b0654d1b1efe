"""Mapping verified token claims to Django users and groups."""
import hashlib
import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from . import conf
from .models import Identity

log = logging.getLogger("gatehouse_auth")

_username_validator = UnicodeUsernameValidator()
GROUP_NAME_MAX = Group._meta.get_field("name").max_length


def sync_user(claims, sync_groups=True):
    """Returns the Django user for verified claims, creating it on first sight.

    The user is found by ``sub`` alone. Email and name follow the token on
    every request (written only when they changed); with sync_groups the
    user's groups become exactly the token's ``groups``; with
    GATEHOUSE_STAFF_GROUPS or GATEHOUSE_SUPERUSER_GROUPS set, is_staff and
    is_superuser follow the token's groups too.
    """
    sub = claims["sub"]
    identity = Identity.objects.select_related("user").filter(sub=sub).first()
    if identity is None:
        identity = _create(claims)
    user = identity.user
    _update_profile(user, claims)
    if sync_groups:
        _sync_groups(user, claims.get("groups", []))
    _sync_admin_flags(user, claims.get("groups", []))
    return user


def _create(claims):
    User = get_user_model()
    sub = claims["sub"]
    for username in _username_candidates(claims):
        if User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists():
            continue
        try:
            # Every statement in here writes, so SQLite takes its write lock
            # at the first one and waits for it rather than failing.
            with transaction.atomic():
                user = User(**{User.USERNAME_FIELD: username})
                user.set_unusable_password()
                user.save(force_insert=True)
                identity = Identity.objects.create(user=user, sub=sub)
        except IntegrityError:
            # Another request created this sub's user, or took the name.
            identity = Identity.objects.select_related("user").filter(sub=sub).first()
            if identity is not None:
                return identity
            continue
        log.info("gatehouse_auth: created user %r for a new identity", username)
        return identity
    raise RuntimeError("gatehouse_auth: no free username for a new identity")


def _username_candidates(claims):
    """The preferred username, then the sub, then names derived from the sub."""
    for name in (claims.get("preferred_username"), claims["sub"]):
        if isinstance(name, str) and _valid_username(name):
            yield name
    digest = hashlib.sha256(claims["sub"].encode()).hexdigest()[:16]
    yield f"gh-{digest}"
    for n in range(2, 100):
        yield f"gh-{digest}-{n}"


def _valid_username(name):
    field = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD)
    if not name or (field.max_length and len(name) > field.max_length):
        return False
    try:
        _username_validator(name)
    except ValidationError:
        return False
    return True


def _update_profile(user, claims):
    changed = []
    email_field = user.get_email_field_name()
    email = claims.get("email") or ""
    if hasattr(user, email_field) and getattr(user, email_field) != email:
        setattr(user, email_field, email)
        changed.append(email_field)
    # Django splits names in two; the token has one display name, and
    # splitting it would guess wrong for many names. get_full_name() still
    # returns it whole.
    name = (claims.get("name") or "")[:150]
    if hasattr(user, "first_name") and (user.first_name, user.last_name) != (name, ""):
        user.first_name, user.last_name = name, ""
        changed += ["first_name", "last_name"]
    if changed:
        user.save(update_fields=changed)


def _sync_groups(user, names):
    wanted = {n for n in names if 0 < len(n) <= GROUP_NAME_MAX}
    if len(wanted) != len(set(names)):
        log.warning("gatehouse_auth: ignored group names longer than %d characters", GROUP_NAME_MAX)
    current = set(user.groups.values_list("name", flat=True))
    if wanted == current:
        return
    # add() and remove(), not set(): set() reads and then writes inside one
    # transaction, which SQLite refuses at once ("database is locked") when
    # another request writes meanwhile, as the parallel first requests of a
    # single-page app do. add() inserts ignoring duplicates, so concurrent
    # syncs of one user on any database agree.
    if wanted - current:
        user.groups.add(*[Group.objects.get_or_create(name=n)[0] for n in sorted(wanted - current)])
    if current - wanted:
        user.groups.remove(*Group.objects.filter(name__in=current - wanted))


def _sync_admin_flags(user, names):
    groups = conf.get_admin_groups()
    if groups is None:
        # Neither setting: the flags are the project's, not the token's.
        return
    names = set(names)
    superuser = bool(names & groups.superuser)
    staff = superuser or bool(names & groups.staff)
    changed = []
    for field, want in (("is_staff", staff), ("is_superuser", superuser)):
        if hasattr(user, field) and getattr(user, field) != want:
            setattr(user, field, want)
            changed.append(field)
    if changed:
        user.save(update_fields=changed)
        log.info(
            "gatehouse_auth: %r is now %s",
            user.get_username(),
            "superuser" if superuser else "staff" if staff else "neither staff nor superuser",
        )
