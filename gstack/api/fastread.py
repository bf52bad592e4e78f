"""The calls clients repeat most, ``instances.get``, a page of ``instances.list``, the ``get`` and
``wait`` of an Operation (what a client polls, or waits on, until its change is done), and the
``get`` of the project and of a zone (what gcloud reads before every instance it creates),
answered before Flask's request machinery when the answer is a plain success.

Why: through Flask an ``instances.get`` paid its request context, the match among ~900 routes,
four before/after hooks, the request session's set-up and teardown and the generic call path
(``registry.run``) around what it needs: the token and project checks, one indexed SELECT and a
byte replacement. Those layers made it ~0.6× of a bare Flask endpoint serving the same bytes on
the same server (issue 15's goal: 0.8×). An Operation's ``get`` cost ~800 µs of server CPU against
~210 µs for an ``instances.get`` on this path, and its ``wait`` (gcloud waits on every Operation it
starts) ~1 ms more than the job it waited for needed.

Only what this layer can be sure of is served here: a ``GET`` of
``/compute/v1/projects/NAME[/zones/ZONE]``, of ``/compute/v1/projects/NAME/zones/ZONE/instances[/NAME]``
or of ``/compute/v1/projects/NAME/{zones/ZONE,regions/REGION,global}/operations/NAME`` (names, not
numeric ids), or a ``POST`` of that Operation's ``/wait`` with no body, whose query holds nothing but
``prettyPrint`` and ``alt=json`` (and, for a list, its paging, order and filter), whose
``Authorization: Bearer`` credential and standing on the project this process checked less than a
cache ttl ago (:func:`gstack.auth.guard.cached_check`: expiry and scopes are checked on every call,
a revocation in this process drops its token at once), and whose answer is there. Everything else
(no credential in the caches, any error, ``fields=``, an instance named by id, a numeric project)
goes on to the Flask app unchanged, which answers as it always did and fills the caches: errors
and the full checks keep their one home, and the bytes of a success are the same functions'
(:func:`gstack.gce.render.render`, :func:`gstack.api.instances.page`). The request log, the
request counters and, in tests, the response contract see these requests as they see the others.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import urlsplit

import orjson
from werkzeug.wrappers import Request

from core.errors import ComputeError
from core.resources import operations, store
from core.resources.queries import (
    InvalidCursor,
    committed_generation,
    committed_versions,
    generation_settled,
    versions_text,
)
from core.services import projects, topology
from gstack import metrics
from gstack.api import instances
from gstack.auth.guard import cached_check
from gstack.gce import contract
from gstack.gce.discovery import by_id
from gstack.gce.listing import parse_params
from gstack.gce.listing_cache import PageCache
from gstack.gce.render import JSON_TYPE, base_url_for, render, wants_pretty
from gstack.logs import log_request

log = logging.getLogger("gstack.api")

# Project ids, zone and instance names as GCE spells them: anything else (a project number, an
# escaped character) takes the full path.
_PATH = re.compile(r"/compute/v1/projects/([a-z][-a-z0-9.:]*)/zones/([a-z][-a-z0-9]*)/instances(?:/([a-z][-a-z0-9]*))?\Z")
# An Operation by name in its zone, region or the project's global scope.
_OPERATION = re.compile(r"/compute/v1/projects/([a-z][-a-z0-9.:]*)/((?:zones|regions)/[a-z][-a-z0-9]*|global)"
                        r"/operations/([a-z][-a-z0-9]*)\Z")
# The project itself and one of its zones: what gcloud reads before every instance it creates.
_PROJECT = re.compile(r"/compute/v1/projects/([a-z][-a-z0-9.:]*)\Z")
_ZONE = re.compile(r"/compute/v1/projects/([a-z][-a-z0-9.:]*)/zones/([a-z][-a-z0-9]*)\Z")
_WAIT = re.compile(_OPERATION.pattern.removesuffix(r"\Z") + r"/wait\Z")
_OPERATIONS = {"zones": "zoneOperations", "regions": "regionOperations", "global": "globalOperations"}
# ``alt=json`` (what gcloud adds to every call) asks for what every answer is; any other ``alt``
# takes the full path.
_GET_ARGS = frozenset({"prettyPrint", "alt"})
_LIST_ARGS = frozenset({"prettyPrint", "alt", "maxResults", "pageToken", "orderBy", "filter"})
_HEADERS_200 = "200 OK"


class FastReads:
    """WSGI middleware in front of the Flask app (see the module's docstring)."""

    def __init__(self, wsgi_app, runtime, log_requests: bool) -> None:
        self.wsgi_app = wsgi_app
        self.runtime = runtime
        self.engine = runtime.factory.kw["bind"]
        self.log_requests = log_requests
        self.check_contract = contract.enabled()
        self.get_method = by_id()["compute.instances.get"]
        self.list_method = by_id()["compute.instances.list"]
        self.operation_methods = {kind: by_id()[f"compute.{name}.get"] for kind, name in _OPERATIONS.items()}
        self.wait_methods = {kind: by_id()[f"compute.{name}.wait"] for kind, name in _OPERATIONS.items()}
        self.project_method, self.zone_method = by_id()["compute.projects.get"], by_id()["compute.zones.get"]
        # The paths served here, by HTTP method.
        self.routes = {"GET": ((_PATH, self._answer), (_OPERATION, self._operation), (_PROJECT, self._project),
                               (_ZONE, self._zone)),
                       "POST": ((_WAIT, self._wait),)}
        self.pages = PageCache()

    def __call__(self, environ, start_response):
        verb = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        for pattern, answer in self.routes.get(verb, ()):
            match = pattern.match(path)
            if match is None:
                continue
            started = time.perf_counter()
            body = answer(environ, *match.groups())
            if body is not None:
                start_response(_HEADERS_200, [("Content-Type", JSON_TYPE), ("Content-Length", str(len(body)))])
                seconds = time.perf_counter() - started
                metrics.count(verb, 200, seconds)
                if self.log_requests:
                    log_request(verb, path, 200, seconds * 1000)
                return [body]
            break
        return self.wsgi_app(environ, start_response)

    def _answer(self, environ, project: str, zone: str, name: str | None) -> bytes | None:
        """An instance or a page of them: the answer's bytes, None when the Flask app must answer."""
        return self._checked(environ, self.list_method if name is None else self.get_method, project,
                             _LIST_ARGS if name is None else _GET_ARGS,
                             lambda args, pretty, base: self._body(project, zone, name, args, pretty, base))

    def _operation(self, environ, project: str, scope: str, name: str) -> bytes | None:
        """An Operation, as ``operations.get`` renders it: None when there is none (the Flask app
        then answers, a 404 or an Operation named by its id)."""
        def body(_args, pretty: bool, base: str) -> bytes | None:
            op = operations.committed(self.engine, project, scope, name)
            return None if op is None else render(operations.to_json(op), pretty, base)

        return self._checked(environ, self.operation_methods[scope.split("/", 1)[0]], project, _GET_ARGS, body)

    def _project(self, environ, project: str) -> bytes | None:
        """``projects.get``, as the full path renders it (no such project: the full path's error)."""
        return self._read(environ, self.project_method, project,
                          lambda session: projects.to_json(session, projects.get(session, project)))

    def _zone(self, environ, project: str, zone: str) -> bytes | None:
        """``zones.get``, as the full path renders it (no such zone: the full path's error)."""
        return self._read(environ, self.zone_method, project,
                          lambda session: topology.zone_json(session, project, topology.zone(session, project, zone)))

    def _read(self, environ, method, project: str, answer) -> bytes | None:
        """A resource's get whose body ``answer(session)`` makes, read in a session of its own."""
        def body(_args, pretty: bool, base: str) -> bytes:
            with self.runtime.factory() as session:
                return render(answer(session), pretty, base)

        return self._checked(environ, method, project, _GET_ARGS, body)

    def _wait(self, environ, project: str, scope: str, name: str) -> bytes | None:
        """``operations.wait`` (gcloud waits on every Operation it starts with it): the Operation as
        :meth:`_operation` answers, once it is DONE or the wait's deadline passed, as the full path
        waits (:meth:`core.jobs.engine.JobEngine.wait`). A request with a body, or an Operation
        that is not there (before or after the wait), goes on to the Flask app."""
        if environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ:
            return None

        def body(_args, pretty: bool, base: str) -> bytes | None:
            op = operations.committed(self.engine, project, scope, name)
            if op is not None and op.status != "DONE":
                self.runtime.engine.wait(op.pk, self.runtime.settings.wait_timeout)
                op = operations.committed(self.engine, project, scope, name)
            return None if op is None else render(operations.to_json(op), pretty, base)

        return self._checked(environ, self.wait_methods[scope.split("/", 1)[0]], project, _GET_ARGS, body)

    def _checked(self, environ, method, project: str, allowed: frozenset[str], produce) -> bytes | None:
        """``produce(args, pretty, base)`` once the query holds only ``allowed`` arguments and the
        caches vouch for the caller (see the module's docstring); None when the Flask app must answer."""
        request = Request(environ)  # werkzeug's, as Flask's: the same query, host and scheme
        args = request.args
        if not args.keys() <= allowed or args.get("alt", "json") != "json":
            return None
        base = base_url_for(self.runtime.settings, request.scheme, request.host)
        auth = request.headers.get("Authorization", "").strip()
        if not cached_check(self.runtime, auth, urlsplit(base).netloc, method, project):
            return None
        try:
            body = produce(args, wants_pretty(args), base)
        except ComputeError:
            return None  # Flask's path raises it again and renders it
        except Exception:  # noqa: BLE001 - logged; Flask's path then answers (its 500 has its own code)
            log.exception("lighter GET path failed on %s; answered by the full path", environ.get("PATH_INFO"))
            return None
        if body is not None and self.check_contract and contract.response_violations(method.id, 200,
                                                                                      orjson.loads(body)):
            return None  # Flask's path refuses it and logs the violation
        return body

    def _body(self, project: str, zone: str, name: str | None, args, pretty: bool, base: str) -> bytes | None:
        if name is not None:
            text = store.committed_body(self.engine, project, "instances", f"zones/{zone}", name)
            return None if text is None else render(orjson.Fragment(text), pretty, base)
        params = parse_params(args, "Instance")  # an invalid query: Flask's path answers its 400
        with self.runtime.factory() as session:
            zone = topology.zone(session, project, zone).name
            scope = f"zones/{zone}"
            if params.predicate is not None:  # a filter: no cache; its bodies come on the canonical base
                return render(instances.page(session, project, zone, args, orjson.Fragment, base), pretty, base)
            # What the bytes depend on besides the rows: the caller's base and the whole query.
            key = (project, scope, base, tuple(args.items(multi=True)))
            generation = committed_generation(self.engine)  # before the reads it vouches for
            body = self.pages.unchanged(key, generation)
            if body is not None:
                return body
            if not generation_settled(self.engine):  # PostgreSQL: writers in flight, see its docstring
                generation = None  # what is read now is kept, but vouched for by its rows alone
            if key in self.pages:  # kept, but written since: are its rows still as they were?
                try:
                    now = committed_versions(self.engine, project, "instances", scope, params.order, params.after,
                                             params.max_results + 1)  # paginate's read: one row more than the page
                except InvalidCursor:
                    return None
                body = self.pages.get(key, now, generation)
            if body is None:  # nothing kept for this request (no rows' read to waste), or rows changed
                read: list = []  # the versions of the page's rows, read with them
                body = _encode(instances.page(session, project, zone, args, orjson.Fragment, base, read), pretty)
                self.pages.put(key, versions_text(read), generation, body)
            return body


def _encode(page: dict, pretty: bool) -> bytes:
    """A page's bytes: :func:`render` without its link rewrite, which would scan ~1 MB for nothing
    (the items come from the database on the caller's base, the envelope's link is made on it)."""
    return orjson.dumps(page, option=orjson.OPT_INDENT_2 if pretty else 0)
