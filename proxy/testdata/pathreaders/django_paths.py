"""Ask real Django how it reads request paths, for path_differential_test.go.

Reads a JSON array of request targets (hex-encoded bytes, as sent on the
request line) from standard input and writes a JSON array with, for each,
{"status": N, "route": NAME, "path": PATH_INFO}: the route Django's URL
resolver picked and the path it resolved.

The WSGI environ is built as wsgiref (PEP 3333's reference server, which
Django's runserver uses) builds it: the request line is read as ISO-8859-1,
the path ends at the first "?", and PATH_INFO is the path percent-decoded
into ISO-8859-1. Django's WSGIHandler then re-encodes PATH_INFO to bytes
and decodes them as UTF-8 (re-percent-encoding broken sequences) and
resolves it without touching dot segments or repeated slashes. gunicorn
differs only for raw non-ASCII bytes and a raw "#" on the request line.

Run with Debian's interpreter: /usr/bin/python3 django_paths.py
"""

import io
import json
import sys
import urllib.parse

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="path-differential-test",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    LOGGING_CONFIG=None,
)
django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import re_path  # noqa: E402


def route(name):
    def view(request, *args, **kwargs):
        return HttpResponse(name + "\n" + request.path_info, content_type="text/plain; charset=utf-8")

    return view


# The test's Gatehouse routes, as a Django project would write them.
urlpatterns = [
    re_path(r"^public(/|$)", route("public")),
    re_path(r"^admin(/|$)", route("admin")),
    re_path(r"^api(/|$)", route("api")),
    re_path(r"", route("home")),
]


def environ(target):
    line = target.decode("iso-8859-1")
    path, _, query = line.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": urllib.parse.unquote(path, "iso-8859-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "app.example.com",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "app.example.com",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def main():
    handler = WSGIHandler()
    out = []
    for t in json.load(sys.stdin):
        status = []
        body = b"".join(handler(environ(bytes.fromhex(t)), lambda s, h, exc=None: status.append(s)))
        code = int(status[0].split()[0])
        name, _, path = body.decode("utf-8").partition("\n") if code == 200 else ("", "", "")
        out.append({"status": code, "route": name, "path": path})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
