"""The crash-safety flow shared by tests/reliability/test_crash_safety.py (a few kills per command)
and benchmarks/crash_safety.py (many): the loop typed as a user would (`init`, `bootstrap`,
`review push`, `review pull`, `retrain --round 1`), each command SIGKILLed at seeded random
moments, then run again to completion, with the checks of reliability_kit after every kill and
after every completed run.

Each kill's moment is chosen just before its run from what the command still has to do. Some are
aimed at a known point of the work, which the command cannot finish before: its Nth VOC file
about to be renamed into labels/ (the command kills itself there, kit.killpoint_env), or the Nth
task import that Label Studio has carried out but whose answer is held back (kit.FaultProxy).
The others fire when the store shows progress (photos ingested, tasks recorded, annotations
pulled, round stage), or after a random delay. Every other kill hits the main process only (as
the OOM killer would), the rest the whole process group (as a power cut would).

A stage records which kills landed with its work half-done (some of it done in that run, not all),
read from the store after the kill: what a test asserts happened, rather than hopes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotator.config import load_config, save_config
from annotator.store import Workspace
from annotator.synthetic import generate
from review_queue.labelstudio.client import connect
from tests.reliability import reliability_kit as kit

REVIEWS = 30  # annotations the simulated reviewer makes before the pull
NEW_REVIEWS = 3  # more, before a pull that would otherwise find nothing new (while the queue lasts)
MORE_REVIEWS = 8  # and before the retrain, whose own pull must bring them in
IMPORT_BATCH = 10  # tasks per import request of the push under test
STORE_ANNOTATION = "review_queue.labelstudio.pull:_store_annotation"  # one annotation, one transaction
IMPORT_PATH = r"^/api/projects/\d+/import(\?|$)"  # a batch of new tasks (not predictions)


@dataclass
class Trigger:
    name: str
    delay: float | None = None
    until: Callable[[], bool] | None = None
    group: bool | None = None  # kill the process group (True) or the main process only; None: alternate
    killpoint: int | None = None  # the command kills itself just before its Nth VOC file rename
    kill_after: tuple[str, int] | None = None  # ... or as the Nth call of "package.module:function" returns
    hop: kit.FaultProxy | None = None  # the run talks to Label Studio through this hop (--url replaced)


@dataclass
class StageResult:
    stage: str
    kills: list[kit.Kill] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    recovered: bool = False  # the final run exited 0
    lost: int = 0
    duplicates: int = 0
    half_done: list[str] = field(default_factory=list)  # kills that landed with the run's work part done

    @property
    def aimed_missed(self) -> list[str]:
        """Kills aimed at a known point that did not land: each one a test that did not run."""
        return [k.trigger for k in self.kills if k.aimed and not k.killed]

    @property
    def landed(self) -> int:
        return sum(k.killed for k in self.kills)

    def describe(self) -> str:
        return f"{self.stage}: {kit.summary_line(self.kills)}; half-done at: {', '.join(self.half_done) or 'none'}"


class CrashFlow:
    """One synthetic photo set and workspace under the Label Studio document root, driven through the CLI."""

    def __init__(
        self,
        root: Path,
        *,
        url: str,
        token: str,
        document_root: Path,
        photos: int = 100,
        labelled: float = 0.2,
        seed: int = 7,
        title: str = "PSL crash test",
    ) -> None:
        self.root = root
        self.data = root / "data"
        self.ws = root / "ws"
        self.url = url
        self.token = token
        self.document_root = document_root
        self.n_photos = photos
        self.labelled = labelled
        self.seed = seed
        self.title = title
        self.rng = random.Random(seed)
        self.env = kit.cli_env(token, document_root)
        self.done: set[str] = set()
        self.reviews = 0  # annotations made in Label Studio so far
        self.manual: set[str] = set()
        self.photos: set[str] = set()
        self.startup_s = 3.0

    # ---- running a stage -----------------------------------------------------------------------
    def prepare(self) -> None:
        if "data" in self.done:
            return
        generate(self.data, images=self.n_photos, labelled_fraction=self.labelled, seed=self.seed)
        self.photos = {p.name for p in (self.data / "images").iterdir()}
        self.manual = {p.with_suffix(".jpg").name for p in (self.data / "labels").glob("*.xml")}
        t = time.monotonic()
        kit.run_cli(["--help"], self.env)
        self.startup_s = time.monotonic() - t
        self.done.add("data")

    def _stage(
        self,
        stage: str,
        args: list[str],
        kills: int,
        next_trigger: Callable[[int, int], Trigger],
        check: Callable[[], list[str]],
        work: Callable[[], int],
        total: Callable[[], int],
        finished: Callable[[], bool] | None = None,
    ) -> StageResult:
        """Kill `args` `kills` times (checking after each kill), then run it to completion and check.

        work/total: how much of the stage's work the store shows done, of how much; a kill that
        landed after its run did some and before it did all counts as half-done.
        finished: true once a run has completed work that is refused when asked for again (a done
        round): then no more kills, and that run counts as the completed one."""
        result = StageResult(stage)
        for i in range(kills):
            if finished is not None and finished():
                break
            trig = next_trigger(i, kills)
            run_args = args if trig.hop is None else [trig.hop.url if a == self.url else a for a in args]
            before = work()
            try:
                kill = kit.run_and_kill(
                    run_args,
                    self.env,
                    trigger=trig.name,
                    delay=trig.delay,
                    until=trig.until,
                    killpoint=self._killpoint(trig),
                    aimed=trig.hop is not None,
                    state=self._state,
                    group=i % 2 == 0 if trig.group is None else trig.group,
                )
            finally:
                if trig.hop is not None:
                    trig.hop.close()
            result.kills.append(kill)
            if kill.hung:
                result.problems.append(f"run {i} ({trig.name}) hung: still running after {kill.after_s} s")
            elif kill.killed and before < work() < total():
                result.half_done.append(trig.name)
            if not kill.killed and kill.exit_code != 0:
                result.problems.append(
                    f"run {i} ({trig.name}) failed on its own (exit {kill.exit_code}): {kill.output[-500:]}"
                )
            if not kit.wait_group_gone(kill.pgid):
                kit.reap_group(kill.pgid)
                result.problems.append(f"after kill {i} ({trig.name}): worker processes outlived the command")
            result.problems += [f"after kill {i} ({trig.name}): {p}" for p in kit.check_after_kill(self.ws)]
        if finished is not None and finished() and result.kills and not result.kills[-1].killed:
            result.recovered = result.kills[-1].exit_code == 0
        else:
            final = kit.run_cli(args, self.env)
            result.recovered = final.returncode == 0
            if not result.recovered:
                result.problems.append(
                    f"the rerun failed (exit {final.returncode}): {(final.stdout + final.stderr)[-800:]}"
                )
        if result.recovered:
            result.problems += [f"after the rerun: {p}" for p in kit.check_after_rerun(self.ws) + check()]
        result.lost, result.duplicates = self.tally(stage)
        self.done.add(stage)
        return result

    def _killpoint(self, trig: Trigger) -> tuple[Path | str, int] | None:
        if trig.kill_after is not None:
            return trig.kill_after
        return None if trig.killpoint is None else (self.ws / "labels", trig.killpoint)

    def _state(self) -> str:
        counts = kit.db_query(
            self.ws,
            "SELECT (SELECT COUNT(*) FROM images), (SELECT COUNT(*) FROM label_versions "
            "WHERE source='model'), (SELECT COUNT(*) FROM tasks), "
            "(SELECT COUNT(*) FROM pulled_annotations)",
        )
        rounds = kit.db_query(self.ws, "SELECT round, stage FROM rounds ORDER BY round")
        if not counts:
            return "no store yet"
        images, model, tasks, pulled = counts[0]
        return (
            f"images {images}, predictions {model}, tasks {tasks}, pulled {pulled}, "
            f"rounds {','.join(f'{r}:{s}' for r, s in rounds) or '-'}"
        )

    # ---- triggers --------------------------------------------------------------------------------
    def _delay(self, lo: float, hi: float, *, group: bool | None = None) -> Trigger:
        d = round(self.startup_s + self.rng.uniform(lo, hi), 2)
        return Trigger(f"delay {d}s", delay=d, group=group)

    def _progress(self, name: str, count: Callable[[], int], total: int, kills_left: int) -> Trigger:
        """Kill once `count()` has grown by a random step since this run started (spread over what is left)."""
        left = total - count()
        if left <= 0:
            return self._delay(-0.5, 1.0)  # nothing left to do: kill the start-up, the checks, the no-op
        step = self.rng.randint(1, max(1, 2 * left // (kills_left + 1)))
        base: list[int] = []

        def reached() -> bool:
            now = count()
            if not base:
                base.append(now)
            return now >= base[0] + step

        return Trigger(f"{name}+{step}", until=reached)

    def _nth(self, left: int, kills_left: int) -> int:
        """A point among `left` steps still to come, past the first (which may only repair what the
        last kill left) and before the last (so the run has work left when it dies)."""
        return self.rng.randint(2, max(2, min(left - 1, 2 * left // (kills_left + 1))))

    def _voc_write(self, name: str, left: int, kills_left: int, *, group: bool | None = None) -> Trigger:
        """The command kills itself just before its Nth VOC file rename (of `left` still to come)."""
        nth = self._nth(left, kills_left)
        return Trigger(f"{name}: VOC file {nth}", killpoint=nth, group=group)

    def _stored(self, left: int, kills_left: int) -> Trigger:
        """The pull kills itself as its Nth annotation is committed (of `left` still to store): some
        stored, some not, however fast the machine (a poll of the store would see 0, then all)."""
        nth = self._nth(left, kills_left)
        return Trigger(f"pulled: annotation {nth} stored", kill_after=(STORE_ANNOTATION, nth))

    def _import_unheard(self, imports_left: int, kills_left: int) -> Trigger:
        """Killed while it waits for the answer to its Nth task import, which Label Studio has carried out:
        the server holds tasks the store has not recorded (the window a push must survive)."""
        nth = self._nth(imports_left, kills_left)
        hop = kit.FaultProxy(self.url, method="POST", path=IMPORT_PATH, nth=nth, after_upstream=True, hold=True)
        return Trigger(f"import {nth} done, answer unheard", until=hop.fired.is_set, hop=hop)

    def _stage_is(self, round_no: int, stage: str) -> Trigger:
        return Trigger(f"round {round_no} {stage}", until=lambda: kit.round_stage(self.ws, round_no) == stage)

    # ---- Label Studio ----------------------------------------------------------------------------
    def client(self) -> Any:
        with Workspace.open(self.ws) as ws:
            return connect(ws, url=self.url, api_key=self.token, document_root=self.document_root)

    def project_id(self) -> int | None:
        return kit.project_id(self.ws)

    def view(self) -> kit.ServerView:
        pid = self.project_id()
        assert pid is not None
        return kit.server_view(self.client(), pid)

    def _orphan_projects(self) -> list[str]:
        """A push killed between creating the project and recording it leaves an empty project behind:
        harmless, but one holding tasks would be a second queue."""
        pid = self.project_id()
        others = [p for p in self.client().sdk.projects.list(title=self.title) if int(p.id) != pid]
        return [f"project {p.id} ({p.title}) also holds {p.task_number} tasks" for p in others if p.task_number]

    def targets(self) -> int:
        return len(self.photos - self.manual)

    def simulate(self, count: int) -> None:
        result = kit.run_cli(
            [
                "review",
                "simulate",
                "-w",
                str(self.ws),
                "--url",
                self.url,
                "--count",
                str(count),
                "--seed",
                str(self.seed),
            ],
            self.env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        self.reviews += count

    def ensure(self, stage: str) -> None:
        """Bring the flow to `stage` without kills (when a test runs on its own)."""
        if stage in self.done:
            return
        runner = {
            "init": self.init,
            "bootstrap": self.bootstrap,
            "push": self.push,
            "pull": self.pull,
            "retrain": self.retrain,
        }[stage]
        result = runner(0)
        assert not result.problems, result.problems

    # ---- the stages ------------------------------------------------------------------------------
    def init(self, kills: int) -> StageResult:
        self.prepare()
        labels = self.ws / "labels"
        images = lambda: kit.db_count(self.ws, "SELECT COUNT(*) FROM images")  # noqa: E731
        voc_files = lambda: sum(1 for _ in labels.glob("*.xml")) if labels.exists() else 0  # noqa: E731

        def next_trigger(i: int, n: int) -> Trigger:
            kind = i % 3
            if kind == 0 and len(self.manual) - voc_files() >= 3:
                return self._voc_write("voc files", len(self.manual) - voc_files(), n - i)
            if kind in (0, 1):
                return self._delay(-1.0, 0.5)
            return self._progress("images", images, self.n_photos, n - i)

        args = ["init", str(self.ws), "--images", str(self.data / "images"), "--labels", str(self.data / "labels")]
        result = self._stage(
            "init",
            args,
            kills,
            next_trigger,
            self._check_init,
            work=lambda: images() + voc_files(),
            total=lambda: self.n_photos + len(self.manual),
        )
        if "configured" not in self.done and result.recovered:
            cfg = load_config(self.ws)
            save_config(
                self.ws,
                cfg.with_(
                    imgsz=128,
                    epochs=1,
                    retrain_epochs=1,
                    batch=8,
                    test_size=4,
                    predict_batch=1,
                    project_title=self.title,
                ),
            )
            self.done.add("configured")
        return result

    def _check_init(self) -> list[str]:
        problems = []
        images = {r[0] for r in kit.db_query(self.ws, "SELECT path FROM images")}
        if images != self.photos:
            problems.append(f"{len(self.photos - images)} photos missing, {len(images - self.photos)} unexpected")
        sources = kit.current_sources(self.ws)
        wrong = [p for p in self.photos if (sources.get(p, (None,))[0] == "manual") != (p in self.manual)]
        if wrong:
            problems.append(f"{len(wrong)} photos with the wrong label source after init: {sorted(wrong)[:5]}")
        twice = kit.db_query(
            self.ws, "SELECT image_id FROM label_versions WHERE source='manual' GROUP BY image_id HAVING COUNT(*) > 1"
        )
        if twice:
            problems.append(f"{len(twice)} photos got their hand label more than once")
        return problems

    def bootstrap(self, kills: int) -> StageResult:
        self.ensure("init")
        predicted = lambda: kit.model_versions(self.ws, "round-000")  # noqa: E731
        training_kills = max(1, kills // 6)

        def next_trigger(i: int, n: int) -> Trigger:
            stage = kit.round_stage(self.ws, 0)
            if stage in (None, "started"):
                if i < training_kills:  # main process only: the data loader's workers must notice alone
                    return self._delay(1.0, 5.0, group=False)
                return self._stage_is(0, "trained")
            left = self.targets() - predicted()  # predict_batch 1: each prediction is stored, then mirrored
            if i % 2 == 0 and left >= 3:
                return self._voc_write("predictions", left, n - i)
            return self._progress("predictions", predicted, self.targets(), n - i)

        args = [
            "bootstrap",
            "-w",
            str(self.ws),
            "--model",
            "yolo11n.yaml",
            "--epochs",
            "1",
            "--imgsz",
            "128",
            "--batch",
            "8",
            "--device",
            "cpu",
            "--workers",
            "2",
        ]
        return self._stage(
            "bootstrap", args, kills, next_trigger, self._check_bootstrap, work=predicted, total=self.targets
        )

    def _check_bootstrap(self) -> list[str]:
        problems = []
        sources = kit.current_sources(self.ws)
        for photo in sorted(self.photos):
            want = ("manual", None) if photo in self.manual else ("model", "round-000")
            if sources.get(photo) != want:
                problems.append(f"{photo}: current label {sources.get(photo)}, expected {want}")
        dup = kit.duplicate_model_versions(self.ws, "round-000")
        if dup:
            problems.append(f"{len(dup)} photos predicted twice by round-000: {dup[:5]}")
        if kit.round_stage(self.ws, 0) not in ("predicted", "done"):
            problems.append(f"round 0 ends at stage {kit.round_stage(self.ws, 0)}")
        return problems

    def push(self, kills: int) -> StageResult:
        self.ensure("bootstrap")
        tasks = lambda: kit.db_count(self.ws, "SELECT COUNT(*) FROM tasks")  # noqa: E731

        def next_trigger(i: int, n: int) -> Trigger:
            imports_left = -(-(self.targets() - tasks()) // IMPORT_BATCH)
            if i % 3 == 0 and imports_left >= 3:
                return self._import_unheard(imports_left, n - i)
            return self._progress("tasks", tasks, self.targets(), n - i)

        args = ["review", "push", "-w", str(self.ws), "--url", self.url, "--batch", str(IMPORT_BATCH)]
        return self._stage("push", args, kills, next_trigger, self._check_push, work=tasks, total=self.targets)

    def _check_push(self) -> list[str]:
        view = self.view()
        problems = kit.check_label_studio(self.ws, view, pulled=False)
        photos = {(t.data or {}).get("photo") for t in view.tasks}
        if photos != self.photos - self.manual:
            problems.append(f"Label Studio has tasks for {len(photos)} photos, expected {self.targets()}")
        return problems + self._orphan_projects()

    def pull(self, kills: int) -> StageResult:
        self.ensure("push")
        if "simulated" not in self.done:
            self.simulate(REVIEWS)
            self.done.add("simulated")
        pulled = lambda: kit.db_count(self.ws, "SELECT COUNT(*) FROM pulled_annotations")  # noqa: E731

        def next_trigger(i: int, n: int) -> Trigger:
            if i % 2 == 1:
                return self._delay(-0.5, 1.0)
            if pulled() >= self.reviews and self.targets() - self.reviews > MORE_REVIEWS + NEW_REVIEWS:
                self.simulate(NEW_REVIEWS)  # reviewers kept working: this pull has something to do
            if self.reviews - pulled() >= 3:
                return self._stored(self.reviews - pulled(), n - i)
            return self._progress("pulled", pulled, self.reviews, n - i)

        args = ["review", "pull", "-w", str(self.ws), "--url", self.url]
        return self._stage("pull", args, kills, next_trigger, self._check_pull, work=pulled, total=lambda: self.reviews)

    def _check_pull(self) -> list[str]:
        view = self.view()
        problems = kit.check_label_studio(self.ws, view, pulled=True)
        annotated = {(t.data or {}).get("photo") for t in view.tasks if t.total_annotations}
        sources = kit.current_sources(self.ws)
        for photo in sorted(self.photos):
            want = "manual" if photo in self.manual else "reviewed" if photo in annotated else "model"
            if sources.get(photo, (None,))[0] != want:
                problems.append(f"{photo}: current label {sources.get(photo)}, expected {want}")
        return problems

    def retrain(self, kills: int) -> StageResult:
        self.ensure("pull")
        if "simulated-2" not in self.done:
            self.simulate(MORE_REVIEWS)
            self.done.add("simulated-2")
        predicted = lambda: kit.model_versions(self.ws, "round-001")  # noqa: E731
        to_predict = self.targets() - self.reviews

        training_kills = max(1, kills // 5)

        def next_trigger(i: int, n: int) -> Trigger:
            stage = kit.round_stage(self.ws, 1)
            if stage in (None, "started"):  # pulling, snapshotting, training
                return self._delay(0.5, 5.0) if i < training_kills else self._stage_is(1, "trained")
            if stage == "trained":
                if n - i <= 1:
                    return self._stage_is(1, "predicted")
                left = to_predict - predicted()  # the run's pull is done (it comes before training)
                if i % 2 == 0 and left >= 3:
                    return self._voc_write("predictions", left, n - i)
                return self._progress("predictions", predicted, to_predict, n - i)
            return self._delay(0.0, 2.5)  # predicted: pushing the new predictions, writing the report

        args = [
            "retrain",
            "--round",
            "1",
            "-w",
            str(self.ws),
            "--url",
            self.url,
            "--epochs",
            "1",
            "--imgsz",
            "128",
            "--batch",
            "8",
            "--device",
            "cpu",
        ]
        # a finished round is not run again (`retrain` asks for --force): no kills after that
        return self._stage(
            "retrain",
            args,
            kills,
            next_trigger,
            self._check_retrain,
            work=predicted,
            total=lambda: to_predict,
            finished=lambda: kit.round_stage(self.ws, 1) == "done",
        )

    def _check_retrain(self) -> list[str]:
        view = self.view()
        problems = kit.check_label_studio(self.ws, view, pulled=True)
        annotated = {int(t.id) for t in view.tasks if t.total_annotations}
        for task in view.tasks:
            versions = sorted(kit.get(p, "model_version") for p in task.predictions or [])
            want = ["round-000"] if int(task.id) in annotated else ["round-001"]
            if versions != want:
                problems.append(f"task {task.id}: predictions {versions}, expected {want}")
        sources = kit.current_sources(self.ws)
        reviewed = {(t.data or {}).get("photo") for t in view.tasks if t.total_annotations}
        for photo in sorted(self.photos):
            want = (
                ("manual", None)
                if photo in self.manual
                else ("reviewed",)
                if photo in reviewed
                else ("model", "round-001")
            )
            if sources.get(photo, ())[: len(want)] != want:
                problems.append(f"{photo}: current label {sources.get(photo)}, expected {want}")
        dup = kit.duplicate_model_versions(self.ws, "round-001")
        if dup:
            problems.append(f"{len(dup)} photos predicted twice by round-001: {dup[:5]}")
        if kit.round_stage(self.ws, 1) != "done":
            problems.append(f"round 1 ends at stage {kit.round_stage(self.ws, 1)}")
        for name in ("model.pt", "manifest.json", "metrics.json", "report.html"):
            if not (self.ws / "rounds" / "001" / name).exists():
                problems.append(f"round 1 is done without its {name}")
        return problems

    # ---- what the benchmark counts ---------------------------------------------------------------
    def tally(self, stage: str) -> tuple[int, int]:
        """(labels lost, things stored or created twice) as the workspace and Label Studio stand now."""
        sources = kit.current_sources(self.ws)
        stored = {r[0] for r in kit.db_query(self.ws, "SELECT path FROM images")}
        lost = len(self.photos - stored)
        lost += sum(1 for p in self.manual if sources.get(p, (None,))[0] != "manual")
        if stage != "init":
            lost += sum(1 for p in self.photos - self.manual if p not in sources)
        dup = len(
            kit.db_query(
                self.ws,
                "SELECT image_id FROM label_versions WHERE source IN ('manual', 'model') "
                "GROUP BY image_id, source, model_version HAVING COUNT(*) > 1",
            )
        )
        if stage in ("push", "pull", "retrain"):
            view = self.view()
            photos = [(t.data or {}).get("photo") for t in view.tasks]
            dup += len(photos) - len(set(photos))
            dup += sum(
                1
                for t in view.tasks
                for n in _counts(kit.get(p, "model_version") for p in t.predictions or [])
                if n > 1
            )
            stored_ids = [
                r[0]
                for r in kit.db_query(
                    self.ws, "SELECT json_extract(meta, '$.annotation_id') FROM label_versions WHERE source='reviewed'"
                )
            ]
            dup += len(stored_ids) - len(set(stored_ids))
            if stage != "push":
                lost += len(view.annotation_ids - set(stored_ids))
        return lost, dup


def _counts(items) -> list[int]:
    seen: dict[Any, int] = {}
    for item in items:
        seen[item] = seen.get(item, 0) + 1
    return list(seen.values())
