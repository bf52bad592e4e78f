"""The GCE metadata server (``computeMetadata/v1/``) as a WSGI application of its own.

Google's rules, which clients rely on: every request to ``computeMetadata/`` carries
``Metadata-Flavor: Google`` (403 otherwise: a page fetched through a proxy or an SSRF'd URL
carries no such header), a request with ``X-Forwarded-For`` is refused (it came through a proxy),
and every answer carries ``Metadata-Flavor: Google`` (google-auth's ``ping`` looks for it before it
believes it runs on GCE) and an ETag. Errors are Google's HTML error pages.

Which instance asks is the :data:`Locator`'s to say: ``gstack metadata`` serves one instance (laptop
mode); the data plane will name the instance by the guest's source address as seen through its
virtual router, never by anything the guest sends.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from werkzeug.wrappers import Request, Response

from core.errors import NotFound
from core.services import guest_attributes
from core.services.admin import transaction
from core.services.instance_metadata import GuestView, Sessions, guest_view, view_stamp
from gstack.metadata import waits
from gstack.metadata.accounts import Minter, TokenRefused, account_email
from gstack.metadata.render import JSON, TEXT, Answer, Dir, answer, walk
from gstack.metadata.tree import metadata_tree

PREFIX = "/computeMetadata/v1/"
MAX_PUT = guest_attributes.MAX_VALUE


@dataclass(frozen=True)
class InstanceRef:
    project: str
    zone: str
    name: str


# Which instance a request comes from; None: from no instance this server serves.
Locator = Callable[[Request], InstanceRef | None]

_REASONS = {301: "Moved Permanently", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 413: "Request Entity Too Large", 503: "Service Unavailable"}


def error_page(status: int, message: str) -> str:
    """Google's HTML error page, as the metadata server sends it."""
    reason = _REASONS.get(status, "Error")
    return (f"<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
            f"  <meta name=viewport content=\"initial-scale=1, minimum-scale=1, width=device-width\">\n"
            f"  <title>Error {status} ({reason})!!1</title>\n"
            f"  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>\n"
            f"  <p><b>{status}.</b> <ins>That\u2019s an error.</ins>\n"
            f"  <p>{message}  <ins>That\u2019s all we know.</ins>\n")


class MetadataError(Exception):
    def __init__(self, status: int, message: str, *, page: bool = True):
        super().__init__(message)
        self.status = status
        self.message = message
        self.page = page


def _not_found(path: str) -> MetadataError:
    return MetadataError(404, f"The requested URL <code>{html.escape(path)}</code> was not found on this server.")


class MetadataServer:
    """The WSGI application: ``MetadataServer(sessions, locate, issuer)`` is callable as one."""

    def __init__(self, sessions: Sessions, locate: Locator, issuer: str):
        self.sessions = sessions
        self.locate = locate
        self.minter = Minter(sessions, issuer)
        self.stopping = threading.Event()  # set on shutdown: hanging GETs return at once

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.handle(request)
        except MetadataError as exc:
            body = error_page(exc.status, exc.message) if exc.page else exc.message
            response = Response(body, exc.status, content_type="text/html; charset=UTF-8" if exc.page else TEXT)
        response.headers["Metadata-Flavor"] = "Google"
        response.headers["Server"] = "Metadata Server for VM"
        response.headers["X-XSS-Protection"] = "0"
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response(environ, start_response)

    # -- Google's rules ----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if "X-Forwarded-For" in request.headers:
            raise MetadataError(403, f"Your client does not have permission to get URL <code>{html.escape(path)}"
                                     "</code> from this server. Request had an X-Forwarded-For header.")
        if path == "/":
            return _text("computeMetadata/\n")  # the bare address answers without the header (GCE detection)
        if request.headers.get("Metadata-Flavor") != "Google":
            raise MetadataError(403, f"Your client does not have permission to get URL <code>{html.escape(path)}"
                                     "</code> from this server. Missing Metadata-Flavor:Google header.")
        if path == "/computeMetadata/":
            return _text("v1/\n")
        if path == PREFIX.rstrip("/"):
            return _redirect(request, PREFIX)
        if not path.startswith(PREFIX):
            raise _not_found(path)
        ref = self.locate(request)
        if ref is None:
            raise _not_found(path)
        segments = path[len(PREFIX):].split("/")
        if request.method in ("PUT", "DELETE"):
            return self.write_guest_attribute(request, ref, segments)
        if request.method not in ("GET", "HEAD"):
            raise MetadataError(405, f"The request method <code>{request.method}</code> is inappropriate for the "
                                     f"URL <code>{html.escape(path)}</code>.")
        view = self.view(ref, path)
        if segments[:2] == ["instance", "service-accounts"] and len(segments) == 4 and \
                segments[3] in ("token", "identity"):
            return self.credential(request, view, segments[2], segments[3], path)
        return self.read(request, ref, view, segments)

    def view(self, ref: InstanceRef, path: str) -> GuestView:
        try:
            with self.sessions() as session:
                return guest_view(session, ref.project, ref.zone, ref.name)
        except NotFound as exc:
            raise _not_found(path) from exc

    # -- reads -------------------------------------------------------------------------------------

    def read(self, request: Request, ref: InstanceRef, view: GuestView, segments: list[str]) -> Response:
        path = request.path
        recursive = request.args.get("recursive", "").lower() == "true"
        alt = request.args.get("alt")
        if alt not in (None, "json", "text"):
            raise MetadataError(400, f"Invalid alt parameter value: {alt}", page=False)
        is_dir = segments[-1] == ""
        node = walk(metadata_tree(view), [s for s in segments if s])
        if node is None or (is_dir and not isinstance(node, Dir)):
            raise _not_found(path)
        if isinstance(node, Dir) and not is_dir and segments != [""]:
            return _redirect(request, path + "/")

        def look(current: GuestView | None = None) -> Answer:
            fresh = current or self.view(ref, path)
            found = walk(metadata_tree(fresh), [s for s in segments if s])
            if found is None:
                raise _not_found(path)
            return answer(found, recursive, alt, "up" if fresh.status == "RUNNING" else "down")

        if request.args.get("wait_for_change", "").lower() == "true":
            result = waits.wait_for_change(look, request.args.get("last_etag"),
                                           waits.timeout_of(request.args.get("timeout_sec")), self.stopping,
                                           stamp=lambda: view_stamp(self.sessions, view))
        else:
            result = look(view)
        response = Response(result.body, 200, content_type=result.content_type)
        response.headers["ETag"] = result.etag
        return response

    def credential(self, request: Request, view: GuestView, alias: str, kind: str, path: str) -> Response:
        email = account_email(view, alias)
        if email is None:
            raise _not_found(path)
        try:
            if kind == "token":
                body = orjson.dumps(self.minter.access_token(view, email, request.args.get("scopes"))).decode()
                result = Answer(body, JSON)
            else:
                result = Answer(self.minter.id_token(view, email, request.args.get("audience"),
                                                     request.args.get("format")), TEXT)
        except TokenRefused as exc:
            raise MetadataError(exc.status, exc.text, page=False) from exc
        response = Response(result.body, 200, content_type=result.content_type)
        response.headers["ETag"] = result.etag
        return response

    # -- guest attributes --------------------------------------------------------------------------

    def write_guest_attribute(self, request: Request, ref: InstanceRef, segments: list[str]) -> Response:
        """PUT or DELETE ``instance/guest-attributes/NAMESPACE/KEY`` (DELETE also takes ``NAMESPACE/``)."""
        path = request.path
        if segments[:2] != ["instance", "guest-attributes"] or len(segments) != 4 or not segments[2] or \
                (request.method == "PUT" and not segments[3]):
            raise MetadataError(405, f"The request method <code>{request.method}</code> is inappropriate for the "
                                     f"URL <code>{html.escape(path)}</code>.")
        namespace, key = segments[2], segments[3]
        view = self.view(ref, path)
        if not guest_attributes.enabled(view.items, view.project_items):
            raise MetadataError(403, "Guest attributes endpoint access is disabled.", page=False)
        if request.method == "PUT":
            if (request.content_length or 0) > MAX_PUT:
                raise MetadataError(413, "The guest attribute value is too large.", page=False)
            value = request.get_data(as_text=True)
            try:
                with transaction(self.sessions) as session:
                    guest_attributes.put(session, view.uid, namespace, key, value)
            except guest_attributes.GuestAttributeError as exc:
                raise MetadataError(400, str(exc), page=False) from exc
        else:
            with transaction(self.sessions) as session:
                guest_attributes.remove(session, view.uid, namespace, key or None)
        return _text("")


def _text(body: str) -> Response:
    response = Response(body, 200, content_type=TEXT)
    response.headers["ETag"] = Answer(body, TEXT).etag
    return response


def _redirect(request: Request, location: str) -> Response:
    query = request.query_string.decode()
    response = Response("", 301, content_type=TEXT)
    response.headers["Location"] = location + ("?" + query if query else "")
    return response
