"""Who may do what: users, project members, service accounts and OAuth clients."""

from __future__ import annotations

import json
import secrets
import sys

import click

from core import identity
from core.identity import directory
from core.services.admin import transaction
from gstack.admin import DATA_DIR, admin, factory, fail
from gstack.admin.projects import project_group

ROLE = click.Choice(["owner", "editor", "viewer", "roles/owner", "roles/editor", "roles/viewer"])


def role_name(role: str) -> str:
    return role if role.startswith("roles/") else "roles/" + role


def read_password(password_stdin: bool, password_file: str | None) -> str | None:
    """The password from stdin or a file (first line), or None when neither is given."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if password_file:
        try:
            with open(password_file) as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            fail(f"cannot read {password_file}: {e.strerror}")
    return None


PASSWORD_STDIN = click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
PASSWORD_FILE = click.option("--password-file", type=click.Path(dir_okay=False),
                             help="Read the password from the first line of this file.")


# --------------------------------------------------------------------------- users

@admin.group("user")
def user_group() -> None:
    """People who sign in on the login page (gcloud auth login, any OAuth client)."""


@user_group.command("create")
@click.argument("email")
@click.option("--name", "display_name", default="", help="Display name (default: the part before @).")
@click.option("--admin", "is_admin", is_flag=True, help="A cloud administrator: reaches every project.")
@PASSWORD_STDIN
@PASSWORD_FILE
@DATA_DIR
def user_create(email: str, display_name: str, is_admin: bool, password_stdin: bool, password_file: str | None,
                data_dir: str | None) -> None:
    """Create a user. Without --password-stdin or --password-file a password is generated and printed once."""
    password = read_password(password_stdin, password_file)
    generated = password is None
    password = password if password is not None else secrets.token_urlsafe(15)
    with transaction(factory(data_dir)) as session:
        try:
            user = identity.create_user(session, email, password, display_name=display_name, admin=is_admin)
        except identity.IdentityError as e:
            fail(str(e))
        click.echo(f"created user {user.email}" + (" (administrator)" if is_admin else ""), err=True)
    if generated:
        click.echo(f"password: {password}")


@user_group.command("list")
@DATA_DIR
def user_list(data_dir: str | None) -> None:
    """List users with the number of projects each belongs to."""
    with factory(data_dir)() as session:
        click.echo(f"{'EMAIL':40} {'NAME':24} {'ADMIN':5} {'PROJECTS':>8}")
        for user, count in directory.users_with_project_counts(session):
            click.echo(f"{user.email:40} {user.display_name[:24]:24} {'yes' if user.admin else 'no':5} {count:>8}")


@user_group.command("delete")
@click.argument("email")
@DATA_DIR
def user_delete(email: str, data_dir: str | None) -> None:
    """Delete a user; its sessions, tokens and memberships go with it."""
    with transaction(factory(data_dir)) as session:
        user = identity.find_principal(session, email)
        if user is None or user.kind != "user":
            fail(f"no user {email}")
        identity.delete_principal(session, user)
    click.echo(f"deleted user {email.lower()}")


@user_group.command("set-password")
@click.argument("email")
@PASSWORD_STDIN
@PASSWORD_FILE
@DATA_DIR
def user_set_password(email: str, password_stdin: bool, password_file: str | None, data_dir: str | None) -> None:
    """Change a user's password (signs it out everywhere). Without a source, one is generated and printed."""
    password = read_password(password_stdin, password_file)
    generated = password is None
    password = password if password is not None else secrets.token_urlsafe(15)
    with transaction(factory(data_dir)) as session:
        try:
            identity.set_password(session, identity.require_principal(session, email), password)
        except identity.IdentityError as e:
            fail(str(e))
    click.echo(f"password changed for {email.lower()}", err=True)
    if generated:
        click.echo(f"password: {password}")


# --------------------------------------------------------------------------- project members

@project_group.command("list")
@DATA_DIR
def project_list(data_dir: str | None) -> None:
    """List projects (public image projects included) with their number of members."""
    with factory(data_dir)() as session:
        click.echo(f"{'NAME':32} {'NUMBER':>12} {'PUBLIC':6} {'MEMBERS':>7}")
        for p, members in directory.projects_with_member_counts(session):
            click.echo(f"{p.name:32} {p.number:>12} {'yes' if p.public else 'no':6} {members:>7}")


@project_group.command("members")
@click.argument("project")
@DATA_DIR
def project_members(project: str, data_dir: str | None) -> None:
    """List a project's members and their roles."""
    with factory(data_dir)() as session:
        try:
            p = identity.find_project(session, project)
        except identity.IdentityError as e:
            fail(str(e))
        click.echo(f"{'MEMBER':60} ROLE")
        for principal, role in identity.members(session, p):
            kind = "serviceAccount" if principal.kind == "serviceAccount" else "user"
            click.echo(f"{kind + ':' + principal.email:60} {role}")


@project_group.command("add-member")
@click.argument("project")
@click.argument("email")
@click.option("--role", type=ROLE, default="viewer", show_default=True)
@DATA_DIR
def project_add_member(project: str, email: str, role: str, data_dir: str | None) -> None:
    """Give a user or service account a role on a project (replaces its current role there)."""
    with transaction(factory(data_dir)) as session:
        try:
            p = identity.find_project(session, project)
            if p.public:
                fail(f"{project} is a public image project; it has no members")
            identity.grant(session, p, identity.require_principal(session, email), role_name(role))
        except identity.IdentityError as e:
            fail(str(e))
    click.echo(f"{email.lower()} is {role_name(role)} of {project}")


@project_group.command("remove-member")
@click.argument("project")
@click.argument("email")
@DATA_DIR
def project_remove_member(project: str, email: str, data_dir: str | None) -> None:
    """Take away a user's or service account's role on a project."""
    with transaction(factory(data_dir)) as session:
        try:
            identity.revoke_membership(session, identity.find_project(session, project),
                                       identity.require_principal(session, email))
        except identity.IdentityError as e:
            fail(str(e))
    click.echo(f"removed {email.lower()} from {project}")


# --------------------------------------------------------------------------- service accounts

@admin.group("service-account")
def service_account_group() -> None:
    """Service accounts (NAME@PROJECT.iam.gserviceaccount.com) and their keys."""


def find_service_account(session, account: str, project: str | None):
    """A service account by email, or by NAME with --project."""
    email = account if "@" in account else identity.service_account_email(project or "", account)
    if "@" not in account and not project:
        fail(f"give the full email of {account}, or --project")
    sa = identity.find_principal(session, email)
    if sa is None or sa.kind != "serviceAccount":
        fail(f"no service account {email}")
    return sa


@service_account_group.command("create")
@click.argument("name")
@click.option("--project", required=True)
@click.option("--role", type=click.Choice([*ROLE.choices, "none"]), default="editor", show_default=True,
              help="Its role on the project, or none.")
@click.option("--display-name", default="")
@DATA_DIR
def sa_create(name: str, project: str, role: str, display_name: str, data_dir: str | None) -> None:
    """Create a service account in a project."""
    with transaction(factory(data_dir)) as session:
        try:
            p = identity.find_project(session, project)
            sa = identity.create_service_account(session, p, name, display_name,
                                                 None if role == "none" else role_name(role))
        except identity.IdentityError as e:
            fail(str(e))
        click.echo(sa.email)


@service_account_group.command("list")
@click.option("--project", default=None, help="Only this project's service accounts.")
@DATA_DIR
def sa_list(project: str | None, data_dir: str | None) -> None:
    """List service accounts with their number of active keys."""
    with factory(data_dir)() as session:
        try:
            owner = identity.find_project(session, project) if project else None
        except identity.IdentityError as e:
            fail(str(e))
        click.echo(f"{'EMAIL':70} {'KEYS':>4}")
        for sa in directory.service_accounts(session, owner):
            active = sum(1 for k in identity.keys_of(session, sa) if not k.disabled)
            click.echo(f"{sa.email:70} {active:>4}")


# --------------------------------------------------------------------------- OAuth clients

@admin.group("client")
def client_group() -> None:
    """OAuth clients that may send users to the sign-in page (gcloud's is built in)."""


@client_group.command("create")
@click.option("--name", required=True, help="Shown to users on the consent page.")
@click.option("--type", "kind", type=click.Choice(["installed", "web"]), default="installed", show_default=True,
              help="installed: a native app (PKCE required, any loopback port); web: a server-side app.")
@click.option("--redirect-uri", "redirect_uris", multiple=True,
              help="Repeatable. Installed apps get http://127.0.0.1/ and http://localhost/ (any port) by default.")
@click.option("--public", is_flag=True, help="No client secret (the app cannot keep one; PKCE only).")
@click.option("--output", default=None, help="Also write Google's client_secret JSON file here.")
@click.option("--base-url", default=None, help="The server's base URL, for the JSON file (default GSTACK_BASE_URL "
                                               "or http://127.0.0.1:8080).")
@DATA_DIR
def client_create(name: str, kind: str, redirect_uris: tuple[str, ...], public: bool, output: str | None,
                  base_url: str | None, data_dir: str | None) -> None:
    """Register an OAuth client; its secret is printed (and written) only now."""
    from gstack.admin import settings
    from gstack.auth.clients import LOOPBACK_HOSTS
    from gstack.bootstrap import write_private

    uris = list(redirect_uris) or ([f"http://{h}/" for h in LOOPBACK_HOSTS] if kind == "installed" else [])
    with transaction(factory(data_dir)) as session:
        try:
            client, secret = identity.create_client(session, name, uris, kind=kind, public=public)
        except identity.IdentityError as e:
            fail(str(e))
    click.echo(f"client_id: {client.client_id}")
    if secret:
        click.echo(f"client_secret: {secret}")
    if output:
        base = (base_url or settings(data_dir).base_url or "http://127.0.0.1:8080").rstrip("/")
        info = {"client_id": client.client_id, "auth_uri": base + "/o/oauth2/auth", "token_uri": base + "/token",
                "redirect_uris": uris}
        if secret:
            info["client_secret"] = secret
        write_private(output, json.dumps({kind: info}, indent=2))
        click.echo(f"wrote {output}", err=True)


@client_group.command("list")
@DATA_DIR
def client_list(data_dir: str | None) -> None:
    """List OAuth clients (built-in ones first)."""
    from gstack.auth.clients import all_clients

    with factory(data_dir)() as session:
        click.echo(f"{'CLIENT_ID':75} {'TYPE':9} {'SECRET':6} NAME")
        for c in all_clients(session):
            origin = " (built in)" if c.builtin else ""
            click.echo(f"{c.client_id:75} {c.kind:9} {'no' if c.public else 'yes':6} {c.name}{origin}")
