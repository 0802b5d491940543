"""Shared by the reliability tests and benchmarks/crash_safety.py: run the real `annotator` CLI in
a child process, SIGKILL it at a chosen moment, and check that a workspace and its Label Studio
project are whole (nothing half-written, nothing lost, nothing twice).

Checks return lists of problems (empty: fine) so the benchmark can count what the tests assert.
"""

from __future__ import annotations

import http.client
import http.server
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from annotator.errors import InputFileError
from annotator.formats.voc import read_voc

_EXE = Path(sys.executable).parent / "annotator"
CLI = [str(_EXE)] if _EXE.exists() else [sys.executable, "-m", "annotator.cli"]
KILLPOINT_DIR = Path(__file__).resolve().parent / "killpoint"  # its sitecustomize.py: a command that kills itself
KILL_AT_ENV = "ANNOTATOR_TEST_KILL_AT"
KILL_AFTER_ENV = "ANNOTATOR_TEST_KILL_AFTER"


def cli_env(token: str | None = None, document_root: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment a user would have: the token in LABEL_STUDIO_API_KEY, no terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("LABEL_STUDIO_API_KEY", "COLUMNS")}
    env.update({"PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"})
    if token is not None:
        env["LABEL_STUDIO_API_KEY"] = token
    if document_root is not None:
        env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] = str(document_root)
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run `annotator ARGS` to completion (stdout and stderr captured as text)."""
    return subprocess.run(
        CLI + args, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@dataclass
class Kill:
    """One injected SIGKILL: whether the command was still running, when, and what the store showed."""

    command: str
    pgid: int
    trigger: str
    killed: bool  # False: the command finished before the trigger fired
    after_s: float
    state: str = ""
    exit_code: int | None = None
    output: str = ""
    aimed: bool = False  # at a known point of the work (a kill point, a held request): it cannot miss
    hung: bool = False  # still running after max_s: killed then, as a hang (a problem, not a landed kill)


def killpoint_env(env: dict[str, str], where: Path | str, nth: int, *, group: bool) -> dict[str, str]:
    """`env` for a command that SIGKILLs itself at a known point (killpoint/sitecustomize.py):
    where = a folder: just before its `nth` rename of a file into it (with labels/, as its nth VOC
    file is about to appear); where = "package.module:function": as the nth call of it returns."""
    armed = dict(env)
    armed["PYTHONPATH"] = os.pathsep.join(p for p in (str(KILLPOINT_DIR), env.get("PYTHONPATH")) if p)
    variable = KILL_AT_ENV if isinstance(where, Path) else KILL_AFTER_ENV
    armed[variable] = f"{where}|{nth}|{'group' if group else 'main'}"
    return armed


def run_and_kill(
    args: list[str],
    env: dict[str, str],
    *,
    trigger: str,
    delay: float | None = None,
    until: Callable[[], bool] | None = None,
    killpoint: tuple[Path | str, int] | None = None,
    aimed: bool = False,
    state: Callable[[], str] | None = None,
    group: bool = True,
    max_s: float = 300.0,
    poll_s: float = 0.01,
) -> Kill:
    """Start `annotator ARGS`; SIGKILL it after `delay` seconds or as soon as `until()` is true, or
    let it kill itself at `killpoint` (where, n): just before its nth rename into the folder `where`,
    or as the nth call of the function `where` ("package.module:function") returns.

    group: kill its whole process group (worker processes too, as a power cut would); False kills
    the main process only (as the OOM killer does), leaving any children to fend for themselves.
    aimed: the trigger is a known point the command cannot get past (a held request): it must land.
    """
    if killpoint is not None:
        env = killpoint_env(env, *killpoint, group=group)
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            CLI + args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        started = time.monotonic()
        killed = hung = False
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > max_s:
                    hung = True
                    break
                if (delay is not None and elapsed >= delay) or (until is not None and until()):
                    if proc.poll() is None:
                        killed = True
                        if group:
                            os.killpg(proc.pid, signal.SIGKILL)
                        else:
                            os.kill(proc.pid, signal.SIGKILL)
                    break
                time.sleep(poll_s)
        finally:
            if proc.poll() is None and not killed:  # ran past max_s: never leave it behind
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            proc.wait()
        if killpoint is not None and proc.returncode == -signal.SIGKILL:
            killed = True  # by its own hand, at the point chosen
        after = time.monotonic() - started
        if group or not killed:
            reap_group(proc.pid)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Kill(
        command=args[0],
        pgid=proc.pid,
        trigger=trigger,
        killed=killed,
        after_s=round(after, 2),
        state=state() if state else "",
        exit_code=proc.returncode,
        output=text[-2000:],
        aimed=aimed or killpoint is not None,
        hung=hung,
    )


def reap_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_group_gone(pgid: int, timeout: float = 10.0) -> bool:
    """True once no process of the group is left (orphaned workers of a main-only kill die by themselves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# ---- reading the store without disturbing the command that writes it ----------------------------


def db_query(ws_root: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """Rows from the workspace database, or [] while it does not exist or is busy."""
    db = Path(ws_root) / "annotator.db"
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(db, timeout=0.5)  # only ever reads
    except sqlite3.Error:
        return []
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def db_count(ws_root: Path, sql: str, args: tuple = ()) -> int:
    rows = db_query(ws_root, sql, args)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def model_versions(ws_root: Path, model_version: str) -> int:
    return db_count(
        ws_root, "SELECT COUNT(*) FROM label_versions WHERE source='model' AND model_version=?", (model_version,)
    )


def project_id(ws_root: Path) -> int | None:
    """The workspace's Label Studio project, from the store's meta table."""
    rows = db_query(ws_root, "SELECT value FROM meta WHERE key='review.project_id'")
    return int(rows[0][0]) if rows else None


def round_stage(ws_root: Path, round_no: int) -> str | None:
    rows = db_query(ws_root, "SELECT stage FROM rounds WHERE round=? ORDER BY attempt DESC LIMIT 1", (round_no,))
    return rows[0][0] if rows else None


# ---- checks ---------------------------------------------------------------------------------------


def check_store(ws_root: Path) -> list[str]:
    """The database opens and passes SQLite's integrity and foreign-key checks."""
    db = Path(ws_root) / "annotator.db"
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(db, timeout=10)
        try:
            integrity = conn.execute("PRAGMA integrity_check").fetchall()
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [f"the store does not open: {exc}"]
    problems = []
    if integrity != [("ok",)]:
        problems.append(f"integrity_check: {integrity[:5]}")
    if foreign:
        problems.append(f"foreign_key_check: {foreign[:5]}")
    return problems


def temp_leftovers(ws_root: Path) -> list[Path]:
    """Atomic-write temp files (.NAME.XXXX.tmp) left in labels/ or reports/ (rounds/ keeps a killed
    round's work folder as it is, and Label Studio's folder is its own)."""
    root = Path(ws_root)
    return [p for folder in ("labels", "reports") if (root / folder).is_dir() for p in (root / folder).rglob(".*.tmp")]


def check_voc_files(ws_root: Path) -> list[str]:
    """Every XML under labels/ parses (none half-written); nothing else there looks like a label."""
    labels = Path(ws_root) / "labels"
    problems = []
    for path in sorted(labels.rglob("*")) if labels.exists() else []:
        if path.is_dir():
            continue
        if path.suffix.lower() == ".xml" and not path.name.startswith("."):
            try:
                read_voc(path)
            except InputFileError as exc:
                problems.append(f"{path.relative_to(labels)} does not parse: {exc.detail}")
        elif not path.name.endswith(".tmp"):
            problems.append(f"{path.relative_to(labels)}: unexpected file in labels/")
    return problems


def check_voc_mirror(ws_root: Path) -> list[str]:
    """After a command finished: each photo's VOC file is there and carries its current label version."""
    labels = Path(ws_root) / "labels"
    problems = []
    rows = db_query(ws_root, "SELECT i.path, cl.version_id FROM current_labels cl JOIN images i ON i.id=cl.image_id")
    for path, version_id in rows:
        xml = labels / Path(path).with_suffix(".xml")
        if not xml.exists():
            problems.append(f"{xml.name}: missing from the VOC mirror")
            continue
        try:
            written = read_voc(xml).extra.get("version_id")
        except InputFileError as exc:
            problems.append(f"{xml.name}: {exc.detail}")
            continue
        if written != str(version_id):
            problems.append(f"{xml.name}: mirrors version {written}, the current one is {version_id}")
    return problems


def current_sources(ws_root: Path) -> dict[str, tuple[str, str | None]]:
    """photo -> (source, model_version) of its current label."""
    return {
        r[0]: (r[1], r[2])
        for r in db_query(
            ws_root,
            "SELECT i.path, lv.source, lv.model_version FROM current_labels cl "
            "JOIN label_versions lv ON lv.id=cl.version_id JOIN images i ON i.id=cl.image_id",
        )
    }


def duplicate_model_versions(ws_root: Path, model_version: str) -> list[str]:
    """Photos predicted more than once by the same model version (a resumed run redoing work)."""
    return [
        r[0]
        for r in db_query(
            ws_root,
            "SELECT i.path FROM label_versions lv JOIN images i ON i.id=lv.image_id WHERE lv.source='model' "
            "AND lv.model_version=? GROUP BY lv.image_id HAVING COUNT(*) > 1",
            (model_version,),
        )
    ]


@dataclass
class ServerView:
    """What Label Studio holds for one project."""

    project_id: int
    tasks: list[Any]

    @property
    def annotation_ids(self) -> set[int]:
        return {int(get(a, "id")) for t in self.tasks for a in (t.annotations or []) if not get(a, "was_cancelled")}


def get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def server_view(client: Any, project_id: int) -> ServerView:
    return ServerView(project_id, [t for page in client.task_pages(project_id, fields="all") for t in page])


def check_label_studio(ws_root: Path, view: ServerView, *, pulled: bool) -> list[str]:
    """One task per photo, the store's task ids are Label Studio's, and (when `pulled`: after a
    completed pull) every submitted annotation is stored exactly once as a reviewed version."""
    problems = []
    photos = Counter((t.data or {}).get("photo") for t in view.tasks)
    twice = sorted(p for p, n in photos.items() if n > 1)
    if twice:
        problems.append(f"{len(twice)} photos have more than one task: {twice[:5]}")
    recorded = {
        r[0]: r[1]
        for r in db_query(
            ws_root,
            "SELECT i.path, t.task_id FROM tasks t JOIN images i ON i.id=t.image_id WHERE t.project_id=?",
            (view.project_id,),
        )
    }
    on_server = {(t.data or {}).get("photo"): int(t.id) for t in view.tasks}
    if recorded != on_server:
        wrong = sorted(set(recorded.items()) ^ set(on_server.items()))
        problems.append(f"store and Label Studio disagree on {len(wrong)} (photo, task) pairs: {wrong[:5]}")
    for task in view.tasks:
        versions = Counter(get(p, "model_version") for p in task.predictions or [])
        doubled = [v for v, n in versions.items() if n > 1]
        if doubled:
            problems.append(f"task {task.id} carries {doubled} predictions more than once")
    stored = Counter(
        r[0]
        for r in db_query(
            ws_root,
            # a merged or adjudicated label (double review) is a reviewed version of its own, derived from
            # two annotations and carrying none: only versions stored from one annotation are counted
            "SELECT json_extract(meta, '$.annotation_id') FROM label_versions "
            "WHERE source='reviewed' AND json_extract(meta, '$.annotation_id') IS NOT NULL",
        )
    )
    pulled_ids = {r[0] for r in db_query(ws_root, "SELECT annotation_id FROM pulled_annotations")}
    on_server_ids = view.annotation_ids
    if pulled:
        lost = sorted(on_server_ids - pulled_ids)
        if lost:
            problems.append(f"{len(lost)} annotations in Label Studio are not in the store: {lost[:10]}")
        unversioned = sorted(a for a in on_server_ids if stored.get(a, 0) == 0)
        if unversioned:
            problems.append(f"{len(unversioned)} annotations have no reviewed label version: {unversioned[:10]}")
    extra = sorted(pulled_ids - on_server_ids)
    if extra:
        problems.append(f"{len(extra)} stored annotations are not in Label Studio: {extra[:10]}")
    more = sorted(a for a, n in stored.items() if n > 1)
    if more:
        problems.append(f"{len(more)} annotations are stored more than once: {more[:10]}")
    return problems


def check_after_kill(ws_root: Path) -> list[str]:
    """Right after a SIGKILL: the store opens and is intact, no VOC file is half-written."""
    return check_store(ws_root) + check_voc_files(ws_root)


def check_after_rerun(ws_root: Path) -> list[str]:
    """After a command ran to completion: the above, the VOC mirror current, no temp files left."""
    return (
        check_after_kill(ws_root)
        + check_voc_mirror(ws_root)
        + [f"leftover temp file {p.relative_to(ws_root)}" for p in temp_leftovers(ws_root)]
    )


def summary_line(kills: Iterable[Kill]) -> str:
    kills = list(kills)
    return f"{sum(k.killed for k in kills)} of {len(kills)} kills landed: " + ", ".join(
        f"{k.trigger}@{k.after_s}s{'' if k.killed else ' (finished first)'}" + (f" [{k.state}]" if k.state else "")
        for k in kills
    )


# ---- a Label Studio of one's own, to kill and restart ------------------------------------------------


class DedicatedServer:
    """A local Label Studio (from the migrated template) that a test may SIGKILL and start again on
    the same port and data: what a crash of the real server looks like to the tool."""

    def __init__(self, root: Path, template: Path) -> None:
        from annotator.config import Config
        from annotator.store import Workspace

        self.document_root = root / "root"
        images = self.document_root / "server-photos" / "images"
        images.mkdir(parents=True, exist_ok=True)
        self.ws = Workspace.create(root / "server-ws", Config(images=images))
        self.template = template
        self.info: Any = None
        self.token = ""

    @property
    def url(self) -> str:
        return self.info.url

    @property
    def database(self) -> Path:
        return self.ws.root / "label-studio" / "data" / "label_studio.sqlite3"

    def start(self) -> None:
        from review_queue.labelstudio import server as ls

        port = self.info.port if self.info is not None else None
        self.info = ls.start_server(self.ws, template=self.template, document_root=self.document_root, port=port)
        creds = ls.read_credentials(self.ws.root)
        assert creds is not None
        self.token = creds.token

    def kill(self) -> None:
        """SIGKILL the server's whole process group, as a crash or the OOM killer would."""
        try:
            os.killpg(self.info.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.info.pid, 0)  # started by this process: reap it, or it lingers as a zombie
        except ChildProcessError:
            pass
        wait_group_gone(self.info.pid)

    def stop(self) -> None:
        from review_queue.labelstudio import server as ls

        ls.stop_server(self.ws)
        self.ws.close()


# ---- a fault at one chosen request ----------------------------------------------------------------

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class FaultProxy:
    """A loopback HTTP hop in front of the real Label Studio that stops the exchange at one chosen
    request, the `nth` matching `method` and the `path` pattern, so a test can have a component die
    there instead of at whatever moment a poll happens to catch.

    after_upstream: False stops before the request is forwarded (the server never sees it); True
    forwards it and holds the answer back (the server acted, the client never hears so).
    At that point `fired` is set and `action` runs (kill the server, say). Then, with `hold`, the
    client is kept waiting for its answer until close() (the test kills it meanwhile); without, the
    hop behaves like a dead server: that request gets no answer, and every later one is dropped or
    refused.
    """

    def __init__(
        self,
        upstream: str,
        *,
        method: str,
        path: str,
        nth: int = 1,
        action: Callable[[], None] | None = None,
        after_upstream: bool = False,
        hold: bool = False,
    ) -> None:
        split = urlsplit(upstream)
        self._upstream = (split.hostname or "127.0.0.1", split.port or 80)
        self._method = method
        self._path = re.compile(path)
        self._left = nth
        self._action = action
        self._after_upstream = after_upstream
        self._hold = hold
        self._lock = threading.Lock()
        self._taken = False  # the chosen request has come: nothing after it is answered
        self._closed = threading.Event()
        self.fired = threading.Event()
        self.requests: list[tuple[str, str]] = []  # what came through, in order
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's client expects

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (ConnectionError, TimeoutError):
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                proxy._relay(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _relay

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def close(self) -> None:
        """Stop listening: from now on a connection is refused, as by a server that is gone."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _chosen(self, method: str, path: str) -> bool:
        with self._lock:
            self.requests.append((method, path))
            if self._taken or method != self._method or not self._path.search(path):
                return False
            self._left -= 1
            self._taken = self._left == 0
            return self._taken

    def _fire(self) -> None:
        self.fired.set()
        if self._action is not None:
            self._action()
        if self._hold:
            self._closed.wait()
        else:  # not from this handler's thread: shutdown() waits for the serving loop
            threading.Thread(target=self.close, daemon=True).start()

    def _relay(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        body = _read_body(handler)
        chosen = self._chosen(handler.command, handler.path)
        handler.close_connection = True  # unless answered below: then keep-alive as the client asked
        if self._taken and not chosen:
            return  # the fault has happened: no answer, as from a dead server
        if chosen and not self._after_upstream:
            self._fire()
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*self._upstream, timeout=600)
        try:
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()  # raw bytes: a compressed body stays compressed for the client
            status, reason, answer_headers = answer.status, answer.reason, answer.getheaders()
        except OSError:
            return  # the server is gone: so is the answer
        finally:
            upstream.close()
        if chosen:
            self._fire()
            return
        handler.send_response_only(status, reason)
        for key, value in answer_headers:
            if key.lower() not in _HOP_BY_HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        handler.close_connection = handler.headers.get("Connection", "").lower() == "close"


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
