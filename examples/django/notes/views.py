"""The single page, its script, the notes form and the DRF API views."""
from pathlib import Path

from django.http import FileResponse, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from rest_framework import generics
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Note
from .serializers import NoteSerializer

APP_JS = Path(__file__).resolve().parent / "static" / "notes" / "app.js"

# The page loads only its own script; nothing may frame it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@require_safe
@never_cache
def index(request):
    """The single page. It holds no data: app.js asks the API for it."""
    response = render(request, "notes/index.html")
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@require_safe
def app_js(request):
    """The page's script, plain JavaScript with no build step."""
    response = FileResponse(open(APP_JS, "rb"), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


class WhoAmIView(APIView):
    """GET /api/whoami: the user DRF sees and the client that called."""

    def get(self, request):
        user, claims = request.user, request.auth
        return Response(
            {
                "username": user.get_username(),
                "sub": claims["sub"],
                "email": user.email,
                "name": user.get_full_name(),
                "groups": sorted(user.groups.values_list("name", flat=True)),
                "client_id": claims.get("client_id", ""),
            }
        )


class NoteListView(generics.ListCreateAPIView):
    """GET /api/notes lists the caller's own notes; POST creates one."""

    serializer_class = NoteSerializer

    def get_queryset(self):
        return Note.objects.filter(owner=self.request.user)

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)


class NoteFormView(APIView):
    """POST /notes/new: the page's classic HTML form, then back to the page.

    A DRF view, so the same Gatehouse token authenticates it. DRF views are
    exempt from Django's CSRF middleware and, without SessionAuthentication,
    DRF enforces no CSRF token either: Gatehouse refuses cookie-authenticated
    POSTs from other origins before they reach Django (docs/django.md, "CSRF").
    """

    parser_classes = [FormParser, MultiPartParser]

    def post(self, request):
        serializer = NoteSerializer(data={"text": request.data.get("text", "")})
        location = "/"
        if serializer.is_valid():
            serializer.save(owner=request.user)
        else:
            location = "/?error=note"
        # 303: the browser follows with a GET, so a reload does not post again.
        response = HttpResponse(status=303)
        response["Location"] = location
        return response
