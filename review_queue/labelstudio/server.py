"""Start and stop the workspace's own Label Studio: local, offline, detached, bound to 127.0.0.1.

Layout under `<workspace>/label-studio/`: `data/` (the server's database and media),
`server.log`, `server.json` (pid, port, url) and `credentials.json` (admin email, password and
API token; mode 0600, the only place they are written). The credentials reach the server
through its environment, never its command line (which any local user can read with `ps`).

A fresh data folder takes 30-90 s of database migrations. `build_template` migrates one folder
once; `start_server(template=...)` (or ANNOTATOR_LS_TEMPLATE) copies it and starts in seconds.
The copy gets its own SECRET_KEY; the admin user and token are created on its first start.

`start_server(team=True)` (`review serve --team`) runs the production setup of Label Studio's Docker
image instead: PostgreSQL (a local cluster under `postgres/`, see postgres.py) behind a multi-worker
WSGI server (gunicorn; the image uses uWSGI, which needs a compiler to install). See docs/team-server.md.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from annotator.errors import LabelStudioError
from annotator.fsutil import atomic_write_text
from annotator.store import Workspace, now_iso
from review_queue.labelstudio import postgres as pg

SERVER_DIR = "label-studio"
TEMPLATE_ENV = "ANNOTATOR_LS_TEMPLATE"
_TEMPLATE_MARK = "annotator-template.json"
_DB_FILE = "label_studio.sqlite3"
# Inherited variables Label Studio would read (it also reads unprefixed USERNAME, PASSWORD, ...).
_SCRUB = (
    "USERNAME",
    "PASSWORD",
    "USER_TOKEN",
    "HOST",
    "PORT",
    "DATABASE_NAME",
    "DJANGO_DB",
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "DEBUG",
    "LOG_LEVEL",
)
_SCRUB_PREFIXES = ("LABEL_STUDIO_", "HEARTEX_")


@dataclass(frozen=True)
class Credentials:
    """The local server's admin login, legacy API token and (team server) database password: secret,
    never print or log."""

    email: str
    password: str
    token: str
    db_password: str = ""

    def __repr__(self) -> str:  # keep secrets out of tracebacks and debug output
        return f"Credentials(email={self.email!r}, password=***, token=***, db_password=***)"


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int
    url: str
    data_dir: str
    document_root: str
    log: str
    started_at: str
    database: str = "sqlite"  # or "postgresql": the team server
    workers: int = 1
    db_port: int = 0


# ---- paths and files ---------------------------------------------------------------------


def server_dir(root: Path) -> Path:
    return Path(root) / SERVER_DIR


def credentials_path(root: Path) -> Path:
    return server_dir(root) / "credentials.json"


def read_credentials(root: Path) -> Credentials | None:
    path = credentials_path(root)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
        return Credentials(
            str(data["email"]), str(data["password"]), str(data["token"]), str(data.get("db_password", ""))
        )
    except (OSError, ValueError, KeyError) as exc:
        raise LabelStudioError(
            f"{path} is unreadable ({type(exc).__name__}); delete {server_dir(root)} "
            "to start the local Label Studio from scratch"
        ) from None


def _new_credentials(root: Path, *, team: bool = False) -> Credentials:
    creds = Credentials(
        email="admin@annotator.local",
        password=secrets.token_urlsafe(18),
        token=secrets.token_hex(20),
        db_password=secrets.token_urlsafe(24) if team else "",
    )
    server_dir(root).mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_text(credentials_path(root), json.dumps(asdict(creds), indent=2) + "\n", mode=0o600)
    return creds


def read_server_info(root: Path) -> ServerInfo | None:
    """The recorded server, if its process is still alive (a stale record is ignored)."""
    path = server_dir(root) / "server.json"
    try:
        info = ServerInfo(**json.loads(path.read_text("utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return info if _is_our_server(info) else None


def _is_our_server(info: ServerInfo) -> bool:
    """The pid is alive, not a zombie, and is a Label Studio on our data folder (pids get reused)."""
    _reap(info.pid)
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        state = Path(f"/proc/{info.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and "label-studio" in cmdline and info.data_dir in cmdline


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ---- template ------------------------------------------------------------------------------


def _label_studio_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "label-studio"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("label-studio")
    if found is None:
        raise LabelStudioError(
            "the label-studio program is not installed; install it with "
            "`pip install 'annotator[server]'` (label-studio==1.23.2)"
        )
    return [found]


def _label_studio_version() -> str:
    try:
        return importlib.metadata.version("label-studio")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _child_env(data_dir: Path, document_root: Path, xdg: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB and not k.startswith(_SCRUB_PREFIXES)}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "XDG_CONFIG_HOME": str(xdg),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def build_template(template_dir: Path, *, timeout: float = 600.0) -> Path:
    """Migrate an empty Label Studio data folder once, to be copied by `start_server`.

    The template holds the migrated database only: no user, no token. Built in a temporary
    sibling folder and renamed into place, so a half-built template is never used.
    """
    template_dir = Path(template_dir).resolve()
    if (template_dir / _TEMPLATE_MARK).exists():
        return template_dir
    template_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{template_dir.name}.", dir=template_dir.parent))
    data = work / "data"
    try:
        log = work / "init.log"
        with open(log, "wb") as fh:
            proc = subprocess.run(
                _label_studio_cmd() + ["init", "-q", "--no-browser", "--data-dir", str(data)],
                env=_child_env(data, work, work / "xdg"),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        if proc.returncode != 0 or not (data / _DB_FILE).exists():
            raise LabelStudioError(f"building the Label Studio template failed (exit {proc.returncode}); see {log}")
        (data / ".env").unlink(missing_ok=True)  # every copy gets its own SECRET_KEY
        (data / _TEMPLATE_MARK).write_text(json.dumps({"label_studio": _label_studio_version(), "built_at": now_iso()}))
        try:
            data.rename(template_dir)
        except OSError:
            if not (template_dir / _TEMPLATE_MARK).exists():  # not a concurrent builder's finished template
                raise
    except subprocess.TimeoutExpired:
        raise LabelStudioError(f"building the Label Studio template took over {timeout:.0f} s; see {work}") from None
    shutil.rmtree(work, ignore_errors=True)
    return template_dir


def _seed_from_template(template: Path, data_dir: Path) -> None:
    tmp = data_dir.with_name(data_dir.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(template, tmp)
    (tmp / _TEMPLATE_MARK).unlink(missing_ok=True)
    fd = os.open(tmp / ".env", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"SECRET_KEY={secrets.token_urlsafe(50)}\n")
    tmp.rename(data_dir)


# ---- start / stop --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(
    ws: Workspace,
    *,
    port: int | None = None,
    template: Path | None = None,
    document_root: Path | None = None,
    timeout: float = 240.0,
    team: bool = False,
    workers: int | None = None,
) -> ServerInfo:
    """Start the workspace's Label Studio (or return the running one) and wait until it answers.

    document_root: the folder Label Studio may serve files under (default: the image root's
    parent, since Label Studio refuses a storage folder equal to its document root); only
    the image root is attached as a storage, so only photos are served.
    team: PostgreSQL behind `workers` gunicorn workers instead of the SQLite development server.
    """
    running = read_server_info(ws.root)
    if running is not None and _healthy(running.url):
        return running
    if running is not None:
        stop_server(ws)
    doc_root = _document_root(ws, document_root)
    port = _choose_port(port)
    if team:
        proc, info = _start_team(ws.root, doc_root, port, workers or default_workers())
    else:
        data_dir, creds = _prepare_data(ws.root, template)
        log_path = server_dir(ws.root) / "server.log"
        proc = _spawn(data_dir, doc_root, creds, port, log_path)
        info = _server_info(proc.pid, port, data_dir, doc_root, log_path)
    atomic_write_text(server_dir(ws.root) / "server.json", json.dumps(asdict(info), indent=2) + "\n", mode=0o600)
    _wait_until_healthy(ws, proc, info, timeout)
    return info


def _choose_port(port: int | None) -> int:
    """The requested port (refused when taken), else a free one."""
    port = port or _free_port()
    if _port_in_use(port):
        raise LabelStudioError(f"port {port} on 127.0.0.1 is taken; choose another with --port")
    return port


def _server_info(pid: int, port: int, data_dir: Path, doc_root: Path, log: Path, **extra: object) -> ServerInfo:
    return ServerInfo(
        pid=pid,
        port=port,
        url=f"http://127.0.0.1:{port}",
        data_dir=str(data_dir),
        document_root=str(doc_root),
        log=str(log),
        started_at=now_iso(),
        **extra,  # type: ignore[arg-type]
    )


def _document_root(ws: Workspace, document_root: Path | None) -> Path:
    """The folder Label Studio serves files under: refused when it would not serve the photos as a storage."""
    image_root = Path(ws.image_root).resolve()
    doc_root = Path(document_root).resolve() if document_root else image_root.parent
    if doc_root == image_root or image_root == Path(image_root.anchor):
        raise LabelStudioError(
            f"Label Studio cannot serve photos from {image_root}: put the photos in a "
            "sub-folder and point `images` in annotator.toml at it"
        )
    return doc_root


def _prepare_data(root: Path, template: Path | None) -> tuple[Path, Credentials]:
    """The server's data folder (a fresh one seeded from the template when there is one) and its admin credentials."""
    sdir = server_dir(root)
    sdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir = sdir / "data"
    if pg.initialised(_pg_dir(root)):
        raise LabelStudioError(
            f"this workspace's Label Studio runs on PostgreSQL ({_pg_dir(root)}): start it with `review serve --team`"
        )
    creds = read_credentials(root)
    fresh = not (data_dir / _DB_FILE).exists()
    if creds is None and not fresh:
        raise LabelStudioError(
            f"{credentials_path(root)} is missing but {data_dir} already has users; "
            f"delete {data_dir} to start over (reviews not pulled yet are lost)"
        )
    if fresh:
        shutil.rmtree(data_dir, ignore_errors=True)
        template = template or (Path(os.environ[TEMPLATE_ENV]) if os.environ.get(TEMPLATE_ENV) else None)
        if template is not None and (Path(template) / _TEMPLATE_MARK).exists():
            _seed_from_template(Path(template), data_dir)
        creds = _new_credentials(root)
    assert creds is not None
    return data_dir, creds


def _spawn(data_dir: Path, doc_root: Path, creds: Credentials, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Launch Label Studio detached (its own session), logging to `log_path`; the credentials go by environment."""
    sdir = data_dir.parent
    env = _child_env(data_dir, doc_root, sdir / "xdg")
    # Label Studio's own start-up reads these to create the admin user and set its token.
    env.update(
        {
            "LABEL_STUDIO_USERNAME": creds.email,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_USER_TOKEN": creds.token,
        }
    )
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            _label_studio_cmd()
            + [
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--enable-legacy-api-token",
                "--log-level",
                "WARNING",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            cwd=str(sdir),
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log_fd)


def _wait_until_healthy(ws: Workspace, proc: subprocess.Popen[bytes], info: ServerInfo, timeout: float) -> None:
    """Wait for the server's /health; a server that exits or does not answer in `timeout` s is an error
    (the latter stopped first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabelStudioError(f"Label Studio exited during start-up (exit code {proc.returncode}); see {info.log}")
        if _healthy(info.url):
            return
        time.sleep(0.25)
    stop_server(ws)
    raise LabelStudioError(f"Label Studio did not answer on {info.url}/health within {timeout:.0f} s; see {info.log}")


# ---- the team server: PostgreSQL behind gunicorn ---------------------------------------------

_WSGI_APP = "label_studio.core.wsgi:application"
_SETTINGS = "label_studio.core.settings.label_studio"  # what `label-studio start` uses (label_studio/server.py)
_TEAM_MARK = "annotator-team-migrated.json"  # in data/: `label-studio init` succeeded with this version


def default_workers() -> int:
    """Gunicorn's rule of thumb (2 x cores + 1), capped at 8: each worker holds 300-450 MB."""
    return min(8, 2 * (os.cpu_count() or 1) + 1)


def _pg_dir(root: Path) -> Path:
    return pg.locate(server_dir(root) / "postgres")


def _start_team(root: Path, doc_root: Path, port: int, workers: int) -> tuple[subprocess.Popen[bytes], ServerInfo]:
    """Start (or initialise) the PostgreSQL cluster, migrate Label Studio onto it, then spawn gunicorn."""
    data_dir, creds = _prepare_team_data(root)
    log_path = server_dir(root) / "server.log"
    cluster = _start_database(root, creds, log_path)
    env = _team_env(data_dir, doc_root, creds, cluster)
    _migrate_team(env, data_dir, log_path)
    proc = _spawn_gunicorn(env, data_dir, port, workers, log_path)
    info = _server_info(
        proc.pid, port, data_dir, doc_root, log_path, database="postgresql", workers=workers, db_port=cluster.port
    )
    return proc, info


def _prepare_team_data(root: Path) -> tuple[Path, Credentials]:
    """The team server's data folder (media, SECRET_KEY) and credentials, with a database password."""
    sdir = server_dir(root)
    sdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir = sdir / "data"
    if (data_dir / _DB_FILE).exists():
        raise LabelStudioError(
            f"this workspace's Label Studio runs on SQLite ({data_dir / _DB_FILE}): start it without --team "
            "(pull its reviews first; a team server starts from an empty database)"
        )
    creds = read_credentials(root)
    if creds is None or not creds.db_password:
        if pg.initialised(_pg_dir(root)):
            raise LabelStudioError(
                f"{credentials_path(root)} has no database password but {_pg_dir(root)} exists; "
                f"delete {sdir} to start over (reviews not pulled yet are lost)"
            )
        creds = _new_credentials(root, team=True)
    data_dir.mkdir(mode=0o700, exist_ok=True)
    return data_dir, creds


def _start_database(root: Path, creds: Credentials, log: Path) -> pg.Cluster:
    """Initialise the cluster once, start it on a free port and create Label Studio's database."""
    data = pg.place(server_dir(root) / "postgres")
    pg.init_cluster(data, creds.db_password, log)
    cluster = pg.start_cluster(data, _free_port(), log)
    pg.create_database(cluster, creds.db_password)
    return cluster


def _team_env(data_dir: Path, doc_root: Path, creds: Credentials, cluster: pg.Cluster) -> dict[str, str]:
    """The child environment: offline hygiene, the database, the admin login (never the command line)."""
    env = _child_env(data_dir, doc_root, data_dir.parent / "xdg")
    env.update(cluster.env(creds.db_password))
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": _SETTINGS,
            "LABEL_STUDIO_USERNAME": creds.email,
            "LABEL_STUDIO_PASSWORD": creds.password,
            "LABEL_STUDIO_USER_TOKEN": creds.token,
        }
    )
    return env


def _migrate_team(env: dict[str, str], data_dir: Path, log: Path, timeout: float = 600.0) -> None:
    """`label-studio init`: migrations (90 s on an empty database), admin user, SECRET_KEY. Skipped when it
    already succeeded with this Label Studio version (it costs ~30 s even with nothing to do)."""
    mark = data_dir / _TEAM_MARK
    version = _label_studio_version()
    if mark.exists() and json.loads(mark.read_text("utf-8")).get("label_studio") == version:
        return
    with open(log, "ab") as fh:
        proc = subprocess.run(
            _label_studio_cmd()
            + ["init", "-q", "--no-browser", "--data-dir", str(data_dir), "--enable-legacy-api-token"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=str(data_dir.parent),
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise LabelStudioError(
            f"preparing Label Studio's PostgreSQL database failed (exit {proc.returncode}); see {log}"
        )
    mark.write_text(json.dumps({"label_studio": version, "migrated_at": now_iso()}))


def _gunicorn_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "gunicorn"
    if not exe.exists():
        raise LabelStudioError("the team server needs gunicorn: `pip install 'annotator[server]'` (gunicorn==27.0.1)")
    return [str(exe)]


def _spawn_gunicorn(env: dict[str, str], data_dir: Path, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    """Gunicorn serving Label Studio's WSGI app, detached like the development server.

    `--name label-studio` and `--chdir <data>` put both marks `_is_our_server` looks for in the command line.
    """
    import label_studio

    ls_path = str(Path(label_studio.__file__).parent)  # `label-studio start` puts it on sys.path too
    cmd = _gunicorn_cmd() + [
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--timeout", "300",  # a snapshot export of thousands of tasks runs inside one request
        "--graceful-timeout", "20",
        "--name", "label-studio",
        "--chdir", str(data_dir),
        "--pythonpath", ls_path,
        "--log-level", "warning",
        _WSGI_APP,
    ]  # fmt: skip
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            cwd=str(data_dir),
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log_fd)


def stop_server(ws: Workspace | Path, *, timeout: float = 20.0) -> bool:
    """Stop the workspace's Label Studio (its whole process group). False if none was running."""
    root = ws.root if isinstance(ws, Workspace) else Path(ws)
    info_path = server_dir(root) / "server.json"
    info = read_server_info(root)
    if info is None:
        info_path.unlink(missing_ok=True)
        return stop_database(root)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(info.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _is_our_server(info):
            time.sleep(0.1)
        if not _is_our_server(info):
            break
    info_path.unlink(missing_ok=True)
    stop_database(root)
    return True


def stop_database(root: Path) -> bool:
    """Stop the team server's PostgreSQL cluster, if this workspace has one running."""
    return pg.stop_cluster(_pg_dir(root), server_dir(root) / "server.log")
