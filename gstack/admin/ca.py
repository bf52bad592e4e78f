"""``gstack admin ca``: the local certificate authority that signs ``gstack serve --tls``'s certificate."""

from __future__ import annotations

import click

from gstack.admin import DATA_DIR, admin, settings
from gstack.datadir import secure as secure_data_dir
from gstack.tls import ca_pem


@admin.group("ca")
def ca() -> None:
    """The data directory's certificate authority (created on first use)."""


@ca.command("export")
@DATA_DIR
def ca_export(data_dir: str | None) -> None:
    """Print the CA certificate (PEM) for clients to trust: REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS,
    gcloud's core/custom_ca_certs_file."""
    config = settings(data_dir)
    secure_data_dir(config.data_dir, config.database_url)
    click.echo(ca_pem(config.data_dir), nl=False)
