"""Universe mode (``GSTACK_UNIVERSE_DOMAIN``): gstack is a universe of its own, as Google Distributed
Cloud and the sovereign clouds are.

Google's clients take one setting, the universe domain (``GOOGLE_CLOUD_UNIVERSE_DOMAIN``,
``client_options.universe_domain``, gcloud's ``core/universe_domain``, a key file's
``universe_domain``), and derive every host from it: ``compute.UNIVERSE`` for the API,
``oauth2.UNIVERSE`` for tokens, ``iamcredentials.UNIVERSE``, and gcloud reads the universe's
descriptor from ``storage.UNIVERSE`` before it accepts the setting. gstack answers on all of them
(one server: the operator resolves the names to it), links name ``https://compute.UNIVERSE``
(gstack/gce/render.py) and the key files it writes carry the universe.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify

from gstack.gce.render import JSON_TYPE

DEFAULT_UNIVERSE = "googleapis.com"
SERVICES = ("compute", "oauth2", "iamcredentials", "sts", "storage")
# Where gcloud looks for the universe's descriptor (googlecloudsdk/core/universe_descriptor): the
# bucket, then its backup, on storage.UNIVERSE.
DESCRIPTOR_PATHS = ("/universe-descriptor-data/universe-descriptor.json",
                    "/universe-descriptor-data-backup/universe-descriptor.json")

bp = Blueprint("universe", __name__)


def hosts(universe: str) -> list[str]:
    """The host names clients derive in ``universe`` for what gstack serves."""
    return [f"{service}.{universe}" for service in SERVICES]


def token_uri(universe: str) -> str:
    """The token endpoint google-auth derives in a universe (its key files name it too)."""
    return f"https://oauth2.{universe}/token"


def descriptor(universe: str) -> dict[str, str]:
    """The universe descriptor gcloud validates ``core/universe_domain`` against (the JSON form of
    its UniverseDescriptorData message)."""
    short = universe.split(".")[0]
    return {"universeDomain": universe, "universeShortName": short, "authenticationDomain": f"auth.{universe}",
            "projectPrefix": short, "cloudWebDomain": f"console.{universe}", "documentationDomain": f"docs.{universe}",
            "version": "1.0", "state": "primary"}


def _descriptor_view():
    universe = current_app.config["GSTACK"].universe_domain
    if not universe:
        abort(404)
    response = jsonify(descriptor(universe))
    response.content_type = JSON_TYPE
    return response


for _path in DESCRIPTOR_PATHS:
    bp.add_url_rule(_path, "descriptor" + str(DESCRIPTOR_PATHS.index(_path)), _descriptor_view)
