"""Where a test server's stored bodies hold links to instances: the check behind
:func:`core.services.instances.updates.link_holders`.

``instances.setName`` rewrites an instance's links in its disks and in the collections
``link_holders`` names, and reads no other body (reading every body cost as much as the cloud). A
feature that starts keeping instance links somewhere else would leave them pointing at the old name
after a rename; every test server checks, when it stops, that no body does (tests/conftest.py).
"""

from __future__ import annotations

import re

import orjson
from sqlalchemy import inspect, select

from core.models import Resource
from core.services.instances.updates import link_holders

# An instance's link as stored: the canonical URL or a project-relative path, nothing after it.
_INSTANCE_LINK = re.compile(r"(?:^|/)projects/([^/]+)/zones/([^/]+)/instances/([^/]+)$")


def _links(value: object, path: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _links(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from _links(item, path)
    elif isinstance(value, str) and (match := _INSTANCE_LINK.search(value)):
        yield path, value, match


def stray_instance_links(engine) -> str:
    """One line per stored link to an instance that a rename would not rewrite: a body outside the
    instance's disks and the collections and scopes :func:`link_holders` names; empty when none."""
    if not inspect(engine).has_table("resources"):
        return ""
    with engine.connect() as conn:
        rows = conn.execute(select(Resource.collection, Resource.scope, Resource.name, Resource.body)
                            .where(Resource.body.contains("/instances/"))).all()
    bodies = {(c, s, n): orjson.loads(b) for c, s, n, b in rows}
    disks_of = {body.get("selfLink"): {d.get("source") for d in body.get("disks", [])}
                for (c, _, _), body in bodies.items() if c == "instances"}
    strays = []
    for (collection, scope, name), body in bodies.items():
        for field, link, match in _links(body):
            region = match.group(2).rsplit("-", 1)[0]
            if collection == "instances" and field == "selfLink" and link == body.get("selfLink"):
                continue
            if collection == "disks" and field == "users" and body.get("selfLink") in disks_of.get(link, ()):
                continue
            if (collection, scope) in link_holders(region):
                continue
            strays.append(f"{collection} {scope}/{name}: {field} = {link}")
    return "\n".join(strays)
