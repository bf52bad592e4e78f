"""``gstack admin`` for identities: every command has --help, refuses clearly, and exits non-zero on failure."""

from __future__ import annotations

import json

from tests.auth.conftest import admin, cli
from tests.conftest import PROJECT, unique

COMMANDS = [
    ("user", "create"), ("user", "list"), ("user", "delete"), ("user", "set-password"),
    ("project", "create"), ("project", "list"), ("project", "members"), ("project", "add-member"),
    ("project", "remove-member"),
    ("service-account", "create"), ("service-account", "list"),
    ("service-account", "key", "create"), ("service-account", "key", "list"), ("service-account", "key", "delete"),
    ("service-account", "key", "disable"), ("service-account", "key", "enable"),
    ("client", "create"), ("client", "list"), ("token",), ("service-account-key",),
]


def help_of(*command: str) -> str:
    from click.testing import CliRunner

    from gstack.cli import main

    result = CliRunner().invoke(main, ["admin", *command, "--help"])
    assert result.exit_code == 0, (command, result.output)
    return result.output


def test_every_command_has_help():
    for command in COMMANDS:
        out = help_of(*command)
        assert "Usage:" in out and "--data-dir" in out, command
    for group in (("user",), ("project",), ("service-account",), ("service-account", "key"), ("client",)):
        assert "Commands:" in help_of(*group), group


def run(server, *args: str, stdin: str | None = None):
    result = cli(server, *args, stdin=stdin)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


def refused(server, *args: str, stdin: str | None = None) -> str:
    result = cli(server, *args, stdin=stdin)
    assert result.exit_code == 1, (args, result.exit_code, result.output)
    assert result.stderr.startswith("ERROR: "), result.stderr
    return result.stderr.strip().removeprefix("ERROR: ")


def test_failure_exits_non_zero_from_a_shell(server):
    """The same in a real process: message on stderr, exit status 1 (2 for a usage error)."""
    proc = admin(server, "user", "delete", "nobody@example.com", check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "ERROR: no user nobody@example.com\n")
    proc = admin(server, "project", "add-member", PROJECT, "x@example.com", "--role", "roles/god", check=False)
    assert proc.returncode == 2 and "Invalid value for '--role'" in proc.stderr


def test_users(server):
    email = f"{unique('cli')}@example.com"
    out = run(server, "user", "create", email, "--name", "CLI User")
    password = out.stdout.strip().removeprefix("password: ")
    assert len(password) >= 16 and f"created user {email}" in out.stderr
    assert refused(server, "user", "create", email.upper(), "--password-stdin", stdin="long-enough\n") == \
        f"{email} already exists"
    assert refused(server, "user", "create", "not-an-email", "--password-stdin", stdin="long-enough\n") == \
        "'not-an-email' is not an email address"
    assert refused(server, "user", "create", f"x{email}", "--password-stdin", stdin="short\n") == \
        "the password must be at least 8 characters long"
    assert refused(server, "user", "create", "sa@p.iam.gserviceaccount.com", "--password-stdin",
                   stdin="long-enough\n").endswith("(that is a service account)")
    run(server, "project", "add-member", PROJECT, email, "--role", "editor")
    listed = run(server, "user", "list").stdout
    assert any(line.split()[0] == email and line.split()[-1] == "1" for line in listed.splitlines())
    members = run(server, "project", "members", PROJECT).stdout
    assert f"user:{email}" in members and "roles/editor" in members
    run(server, "user", "set-password", email, "--password-stdin", stdin="a-new-password\n")
    run(server, "user", "delete", email)
    assert email not in run(server, "user", "list").stdout
    assert refused(server, "user", "delete", email) == f"no user {email}"


def test_projects_and_members(server):
    project = unique("cliproj")
    run(server, "project", "create", project)
    listed = run(server, "project", "list").stdout
    assert any(line.split()[0] == project for line in listed.splitlines())
    assert any(line.split()[0] == "debian-cloud" and line.split()[2] == "yes" for line in listed.splitlines())
    assert refused(server, "project", "add-member", "no-such-project", "x@example.com") == \
        "project no-such-project does not exist"
    assert refused(server, "project", "add-member", project, "nobody@example.com") == \
        "no user or service account nobody@example.com"
    assert refused(server, "project", "add-member", "debian-cloud", "nobody@example.com", "--role", "owner") == \
        "debian-cloud is a public image project; it has no members"
    assert refused(server, "project", "remove-member", project, f"gstack-admin@{PROJECT}.iam.gserviceaccount.com") \
        == f"gstack-admin@{PROJECT}.iam.gserviceaccount.com is not a member of {project}"


def test_service_accounts_and_keys(server, tmp_path):
    name = "cli-" + unique("sa").split("-")[1]
    email = run(server, "service-account", "create", name, "--project", PROJECT, "--role", "none").stdout.strip()
    assert refused(server, "service-account", "create", name, "--project", PROJECT) == \
        f"service account {email} already exists"
    assert refused(server, "service-account", "create", "Bad_Name", "--project", PROJECT).startswith(
        "invalid service account name 'Bad_Name'")
    assert refused(server, "service-account", "create", "someone", "--project", "nope") == "project nope does not exist"
    key = json.loads(run(server, "service-account", "key", "create", name, "--project", PROJECT,
                           "--base-url", "https://gstack.example.com/").stdout)
    assert key["type"] == "service_account" and key["client_email"] == email and key["project_id"] == PROJECT
    assert key["token_uri"] == "https://gstack.example.com/token"
    assert key["private_key"].startswith("-----BEGIN PRIVATE KEY-----") and len(key["private_key_id"]) == 40
    listed = run(server, "service-account", "list", "--project", PROJECT).stdout
    assert any(line.split() == [email, "1"] for line in listed.splitlines())
    assert refused(server, "service-account", "key", "list", name) == f"give the full email of {name}, or --project"
    assert refused(server, "service-account", "key", "create", "ghost@x.iam.gserviceaccount.com") == \
        "no service account ghost@x.iam.gserviceaccount.com"
    assert refused(server, "service-account", "key", "delete", "0" * 40) == f"no service-account key {'0' * 40}"
    run(server, "service-account", "key", "delete", key["private_key_id"])
    assert "ACTIVE" not in run(server, "service-account", "key", "list", email).stdout


def test_clients(server, tmp_path):
    out = run(server, "client", "create", "--name", "CLI App", "--output", str(tmp_path / "client.json"),
                "--base-url", server.base).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines())
    assert fields["client_id"].endswith(".apps.gstack.local") and fields["client_secret"].startswith("GOCSPX-")
    saved = json.loads((tmp_path / "client.json").read_text())["installed"]
    assert saved["client_secret"] == fields["client_secret"] and saved["token_uri"] == server.base + "/token"
    assert saved["redirect_uris"] == ["http://127.0.0.1/", "http://localhost/", "http://[::1]/"]
    public = run(server, "client", "create", "--name", "Public App", "--public").stdout
    assert "client_secret" not in public
    listed = run(server, "client", "list").stdout
    assert "32555940559.apps.googleusercontent.com" in listed and "(built in)" in listed
    assert fields["client_id"] in listed
    assert refused(server, "client", "create", "--name", "Web", "--type", "web") == \
        "a web client needs at least one --redirect-uri"
    assert refused(server, "client", "create", "--name", "Bad", "--redirect-uri", "not a uri") == \
        "redirect URI 'not a uri' must be absolute, without a fragment"

