"""``gstack metadata``: one instance's metadata server on 127.0.0.1 (laptop mode).

Code under development that uses Compute Engine credentials (google-auth's
``compute_engine.Credentials``, ``google.auth.default()``) finds it through
``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` and gets the instance's identity and tokens, which
gstack's API accepts with the instance's scopes. No guest is needed: the instance may be a
simulated one.
"""

from __future__ import annotations

import signal
import threading

import click
from werkzeug.serving import make_server

from core.errors import NotFound
from core.services.instance_metadata import guest_view
from gstack.admin import factory, fail, settings
from gstack.metadata.app import InstanceRef, MetadataServer

DEFAULT_PORT = 8091
DEFAULT_ISSUER = "http://127.0.0.1:8080"


@click.command("metadata")
@click.option("--project", required=True, help="The instance's project.")
@click.option("--zone", required=True, help="The instance's zone.")
@click.option("--instance", "name", required=True, help="The instance whose metadata to serve.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--data-dir", default=None, help="gstack's data directory (default ~/.local/share/gstack).")
@click.option("--issuer", default=None,
              help="The issuer of ID tokens: gstack's API URL (default GSTACK_BASE_URL, else " + DEFAULT_ISSUER + ").")
def metadata(project: str, zone: str, name: str, port: int, data_dir: str | None, issuer: str | None) -> None:
    """Serve one instance's GCE metadata server (computeMetadata/v1) on 127.0.0.1."""
    config = settings(data_dir)
    sessions = factory(data_dir)
    ref = InstanceRef(project, zone, name)
    try:
        with sessions() as session:
            guest_view(session, project, zone, name)
    except NotFound:
        fail(f"instance {name} does not exist in project {project}, zone {zone}")
    app = MetadataServer(sessions, lambda _request: ref, (issuer or config.base_url or DEFAULT_ISSUER).rstrip("/"))
    server = make_server("127.0.0.1", port, app, threaded=True)
    address = f"127.0.0.1:{server.server_port}"
    click.echo(f"""
gstack serves the metadata of instance {name} ({project}, {zone}) at http://{address}/computeMetadata/v1/
Point Google's client libraries at it:
  export GCE_METADATA_HOST={address} GCE_METADATA_IP={address}
""", err=True)

    def stop(*_: object) -> None:
        app.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        app.stopping.set()
