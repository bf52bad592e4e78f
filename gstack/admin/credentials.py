"""Credentials for callers: access tokens and service-account keys."""

from __future__ import annotations

import datetime
import json

import click

from core import identity
from core.identity import directory
from core.services.admin import transaction
from gstack import universe
from gstack.admin import DATA_DIR, admin, factory, fail, settings
from gstack.admin.identities import find_service_account, service_account_group

SCOPES = {
    "compute": "https://www.googleapis.com/auth/compute",
    "compute.readonly": "https://www.googleapis.com/auth/compute.readonly",
    "cloud-platform": "https://www.googleapis.com/auth/cloud-platform",
}


def token_uri(base_url: str | None, data_dir: str | None) -> str:
    config = settings(data_dir)
    if not (base_url or config.base_url) and config.universe_domain:
        return universe.token_uri(config.universe_domain)
    base = base_url or config.base_url or "http://127.0.0.1:8080"
    return base.rstrip("/") + "/token"


def universe_domain(data_dir: str | None) -> str:
    """The universe a key file names: clients derive every host from it."""
    return settings(data_dir).universe_domain or universe.DEFAULT_UNIVERSE


def write_key_file(key: dict, output: str) -> None:
    from gstack.bootstrap import write_key

    if output == "-":
        click.echo(json.dumps(key, indent=2))
    else:
        write_key(output, key)
        click.echo(f"wrote {output} for {key['client_email']} (key {key['private_key_id']})", err=True)


OUTPUT = click.option("--output", default="-", show_default=True, help="File to write (mode 0600), - for stdout.")
BASE_URL = click.option("--base-url", default=None,
                        help="Where gstack serves /token (default GSTACK_BASE_URL or http://127.0.0.1:8080).")


@admin.command("token")
@click.option("--project", required=True)
@click.option("--scope", "scopes", multiple=True, default=["cloud-platform"], show_default=True,
              help="compute, compute.readonly, cloud-platform or a full scope URL; repeatable.")
@click.option("--lifetime", default=3600, show_default=True, type=int, help="Seconds.")
@DATA_DIR
def admin_token(project: str, scopes: tuple[str, ...], lifetime: int, data_dir: str | None) -> None:
    """Print an access token for the project's gstack-admin service account."""
    from gstack.bootstrap import project_admin

    with transaction(factory(data_dir)) as session:
        try:
            sa = project_admin(session, project)
        except identity.IdentityError as e:
            fail(str(e))
        token, _ = identity.issue_token(session, sa, [SCOPES.get(s, s) for s in scopes], ttl=lifetime)
    click.echo(token)


@admin.command("service-account-key")
@click.option("--project", required=True)
@click.option("--name", default="gstack-admin", show_default=True, help="Service account name (created as owner).")
@OUTPUT
@BASE_URL
@DATA_DIR
def admin_sa_key(project: str, name: str, output: str, base_url: str | None, data_dir: str | None) -> None:
    """Write a key of the project's owner service account NAME, creating the account if needed."""
    from gstack.bootstrap import project_admin

    with transaction(factory(data_dir)) as session:
        try:
            p = identity.find_project(session, project)
            if name == "gstack-admin":
                sa = project_admin(session, project)
            else:
                sa = directory.service_account(session, identity.service_account_email(project, name)) \
                    or identity.create_service_account(session, p, name, role="roles/owner")
        except identity.IdentityError as e:
            fail(str(e))
        key = identity.create_key(session, sa, p, token_uri(base_url, data_dir), universe_domain(data_dir))
    write_key_file(key, output)


@service_account_group.group("key")
def key_group() -> None:
    """A service account's keys (Google's JSON key files)."""


ACCOUNT = click.argument("account")
PROJECT = click.option("--project", default=None, help="The project, when ACCOUNT is a name and not an email.")


@key_group.command("create")
@ACCOUNT
@PROJECT
@OUTPUT
@BASE_URL
@DATA_DIR
def key_create(account: str, project: str | None, output: str, base_url: str | None, data_dir: str | None) -> None:
    """Create a key for ACCOUNT and write it as a Google-format JSON key file."""
    with transaction(factory(data_dir)) as session:
        sa = find_service_account(session, account, project)
        owner = directory.home_project(session, sa)
        key = identity.create_key(session, sa, owner, token_uri(base_url, data_dir), universe_domain(data_dir))
    write_key_file(key, output)


def _when(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@key_group.command("list")
@ACCOUNT
@PROJECT
@DATA_DIR
def key_list(account: str, project: str | None, data_dir: str | None) -> None:
    """List ACCOUNT's keys."""
    with factory(data_dir)() as session:
        sa = find_service_account(session, account, project)
        click.echo(f"{'KEY_ID':42} {'CREATED':21} STATUS")
        for key in identity.keys_of(session, sa):
            click.echo(f"{key.key_id:42} {_when(key.created):21} {'DISABLED' if key.disabled else 'ACTIVE'}")


def _set_key(key_id: str, data_dir: str | None, *, disabled: bool | None) -> None:
    with transaction(factory(data_dir)) as session:
        try:
            directory.set_key(session, key_id, disabled=disabled)
        except identity.IdentityError as e:
            fail(str(e))


@key_group.command("delete")
@click.argument("key_id")
@DATA_DIR
def key_delete(key_id: str, data_dir: str | None) -> None:
    """Delete a key: assertions and self-signed JWTs signed with it are refused from now on."""
    _set_key(key_id, data_dir, disabled=None)
    click.echo(f"deleted key {key_id}")


@key_group.command("disable")
@click.argument("key_id")
@DATA_DIR
def key_disable(key_id: str, data_dir: str | None) -> None:
    """Disable a key (it can be enabled again)."""
    _set_key(key_id, data_dir, disabled=True)
    click.echo(f"disabled key {key_id}")


@key_group.command("enable")
@click.argument("key_id")
@DATA_DIR
def key_enable(key_id: str, data_dir: str | None) -> None:
    """Enable a disabled key."""
    _set_key(key_id, data_dir, disabled=False)
    click.echo(f"enabled key {key_id}")
