"""Credentials for callers: access tokens and service-account keys."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from core import identity
from core.db import write_session
from core.models import Principal, Project
from gstack.admin import DATA_DIR, admin, factory, fail

SCOPES = {
    "compute": "https://www.googleapis.com/auth/compute",
    "compute.readonly": "https://www.googleapis.com/auth/compute.readonly",
    "cloud-platform": "https://www.googleapis.com/auth/cloud-platform",
}


@admin.command("token")
@click.option("--project", required=True)
@click.option("--scope", "scopes", multiple=True, default=["cloud-platform"], show_default=True,
              help="compute, compute.readonly, cloud-platform or a full scope URL; repeatable.")
@click.option("--lifetime", default=3600, show_default=True, type=int, help="Seconds.")
@DATA_DIR
def admin_token(project: str, scopes: tuple[str, ...], lifetime: int, data_dir: str | None) -> None:
    """Print an access token for the project's gstack-admin service account."""
    from gstack.bootstrap import project_admin

    with write_session(factory(data_dir)) as session:
        try:
            sa = project_admin(session, project)
        except identity.IdentityError as e:
            fail(str(e))
        token, _ = identity.issue_token(session, sa, [SCOPES.get(s, s) for s in scopes], ttl=lifetime)
    click.echo(token)


@admin.command("service-account-key")
@click.option("--project", required=True)
@click.option("--name", default="gstack-admin", show_default=True, help="Service account name (created as owner).")
@click.option("--output", default="-", show_default=True, help="File to write, - for stdout.")
@click.option("--base-url", default="http://127.0.0.1:8080", show_default=True, help="Where gstack serves /token.")
@DATA_DIR
def admin_sa_key(project: str, name: str, output: str, base_url: str, data_dir: str | None) -> None:
    """Write a Google-format service-account JSON key whose token_uri is this server's /token."""
    from gstack.bootstrap import project_admin, write_key

    with write_session(factory(data_dir)) as session:
        p = session.scalar(select(Project).where(Project.name == project))
        if p is None:
            fail(f"project {project} does not exist")
        try:
            if name == "gstack-admin":
                sa = project_admin(session, project)
            else:
                sa = session.scalar(select(Principal).where(
                    Principal.email == identity.service_account_email(project, name)))
                sa = sa or identity.create_service_account(session, p, name, role="roles/owner")
        except identity.IdentityError as e:
            fail(str(e))
        key = identity.create_key(session, sa, p, base_url.rstrip("/") + "/token")
    if output == "-":
        click.echo(json.dumps(key, indent=2))
    else:
        write_key(output, key)
        click.echo(f"wrote {output} for {key['client_email']}", err=True)
