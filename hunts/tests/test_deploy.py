"""Deployment checks (DESIGN section 2): production settings pass `check --deploy`, refuse to start without
a secret key, and every page carries the Content Security Policy; the socket origin rule holds in production.

The settings are read once per process, so each production case runs `manage.py` in a subprocess with
the environment of a real deployment (no .env file is read for values the environment sets).
"""

import os
import secrets
import subprocess
import sys

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

from testing.processes import CLOCK_NICE
from treasurehunt.asgi import application
from treasurehunt.csp import POLICY

ROOT = settings.BASE_DIR


def manage(*args: str, **env: str | None) -> subprocess.CompletedProcess:
    """Run manage.py with production settings; a variable given as None is left out of the environment."""
    production = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "treasurehunt.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "hunt.example.org",
        "DATABASE_URL": f"sqlite:///{ROOT / 'db.sqlite3'}",
        "REDIS_URL": "",
        **env,
    }
    production = {key: value for key, value in production.items() if value is not None}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=production,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_check_deploy_at_warning_level():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY=secrets.token_urlsafe(50)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_does_fail_on_a_weak_secret_key():
    """The check above can fail: a short key is a warning, and warnings fail the run."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY="short")

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


@pytest.mark.parametrize("secret", ["", None], ids=["empty", "unset"])
def test_production_refuses_to_start_without_a_secret_key(secret):
    """Unset means not in the environment (and, as in CI, no .env file giving one)."""
    result = manage("check", DJANGO_SECRET_KEY=secret)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required when DJANGO_DEBUG=0" in result.stderr


def test_production_turns_on_https_cookies_and_hsts():
    code = (
        "from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS > 0, s.DEBUG)"
    )
    result = manage("shell", "--no-imports", "-c", code, DJANGO_SECRET_KEY=secrets.token_urlsafe(50))

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "True", "False"]


@pytest.mark.parametrize(("pool_max", "expected"), [(None, 8), ("12", 12)], ids=["default", "set"])
def test_postgresql_settings_are_designs_with_a_pool_of_db_pool_max(pool_max, expected):
    """DESIGN section 2: CONN_MAX_AGE 0, health checks, a pool of 2 to DB_POOL_MAX (default 8), timeout 10."""
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default'];"
        "print(d['ENGINE'], d['CONN_MAX_AGE'], d['CONN_HEALTH_CHECKS'], sorted(d['OPTIONS']['pool'].items()))"
    )
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        code,
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL="postgres://hunt@127.0.0.1:5432/hunt",
        DB_POOL_MAX=pool_max,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"django.db.backends.postgresql 0 True [('max_size', {expected}), ('min_size', 2), ('timeout', 10)]"
    )


def procfile() -> dict[str, str]:
    lines = (ROOT / "deploy" / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def test_the_procfile_gives_each_web_process_a_pool_for_both_its_thread_pools():
    assert procfile()["web"].startswith("DB_POOL_MAX=${WEB_DB_POOL_MAX:-12} ")


def test_the_procfile_runs_the_clock_below_the_sockets_priority_and_the_test_stacks_do_too():
    roles = procfile()

    for role in ("clock", "beat"):
        assert f"nice -n ${{CLOCK_NICE:-{CLOCK_NICE}}} .venv/bin/celery" in roles[role], role
    for role in ("web", "judge", "treasure"):
        assert "nice" not in roles[role], role
    assert CLOCK_NICE == 10


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/", "/accounts/login/", "/accounts/signup/", "/api/docs/", "/admin/login/", "/no-such-page/"],
)
def test_every_page_carries_the_content_security_policy(client, path):
    response = client.get(path)

    assert response["Content-Security-Policy"] == POLICY
    assert "script-src 'self';" in POLICY and "'unsafe-inline'" not in POLICY
    assert "frame-ancestors 'none'" in POLICY


@pytest.mark.django_db
def test_swagger_ui_loads_its_init_script_from_a_file_not_inline(client):
    page = client.get("/api/docs/").content.decode()
    script = client.get("/api/docs/?script=")

    assert '<script src="/api/docs/?script="></script>' in page
    assert "<script>" not in page and "<style>" not in page
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


@pytest.mark.parametrize(
    "template",
    sorted(str(p.relative_to(ROOT)) for p in (ROOT / "templates").rglob("*.html")),
)
def test_our_templates_have_no_inline_script_style_or_event_handlers(template):
    """What the policy would block in a browser (and report as a console error) is not in our pages."""
    text = (ROOT / template).read_text()
    for banned in ("<script>", "<style", " style=", "javascript:", " onclick=", " onload=", " onerror="):
        assert banned not in text, f"{template} contains {banned!r}"


@pytest.fixture
def production_hosts(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["hunt.example.org"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("https://hunt.example.org", True),
        ("https://evil.example.com", False),
        ("https://hunt.example.org.evil.example.com", False),
        ("null", False),
        ("http://localhost", False),
    ],
)
async def test_socket_origin_rule_in_production(production_hosts, origin, accepted):
    communicator = WebsocketCommunicator(
        application, "/ws/hunts/nope/", headers=[(b"origin", origin.encode())]
    )
    connected, code = await communicator.connect(timeout=5)
    if accepted:
        # Past the origin rule: accepted, then closed because the socket has no user.
        assert connected
        assert (await communicator.receive_output(timeout=5))["code"] == 4401
    else:
        assert not connected
    await communicator.disconnect()
