"""`annotator demo`: the whole loop, on SIMULATED photos and a SIMULATED dermatologist.

synth -> init -> bootstrap (round 0) -> serve Label Studio -> push -> simulated review of part
of the queue -> pull -> retrain round 1 (warm start) -> learning curve. Label Studio is left
running so a person can open the queue. Every step is idempotent: rerunning the demo on the
same folder continues where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from annotator.config import Config
from annotator.console import console, progress_bar, say


@dataclass(frozen=True)
class DemoSettings:
    folder: Path
    images: int = 240
    review_fraction: float = 0.5
    epochs: int | None = None
    retrain_epochs: int | None = None
    imgsz: int | None = None
    port: int | None = None
    seed: int = 0


def _step(n: int, text: str) -> None:
    say(f"\n[bold cyan]step {n}/9[/] {text}")


def run_demo(settings: DemoSettings) -> dict:
    import torch

    from annotator.ingest import ingest
    from annotator.store import Workspace
    from annotator.synth import generate
    from bootstrap.run import BootstrapSettings, run_bootstrap
    from review_queue.labelstudio.client import connect
    from review_queue.labelstudio.pull import pull
    from review_queue.labelstudio.push import push
    from review_queue.labelstudio.server import credentials_path, start_server
    from review_queue.simulate import simulate
    from annotator.cli.loop import _train_and_predict, print_curve
    from bootstrap.curve import learning_curve
    from bootstrap.rounds import finish_round, plan_retrain, round_model_path, stage_reached

    gpu = torch.cuda.is_available()
    epochs = settings.epochs or (60 if gpu else 40)  # CPU-sized: the demo must finish in ~10 min on 2 cores
    retrain_epochs = settings.retrain_epochs or max(5, epochs * 2 // 5)  # warm start: fewer epochs
    batch = 16 if gpu else 8  # more updates per epoch on the small CPU seed set
    imgsz = settings.imgsz or (640 if gpu else 320)
    folder = settings.folder.resolve()
    data, ws_root = folder / "data", folder / "workspace"
    started = time.perf_counter()
    say(f"[bold]annotator demo[/] in {folder} ({'GPU' if gpu else 'CPU'}: yolo11{'s' if gpu else 'n'}, "
        f"{epochs}+{retrain_epochs} epochs at {imgsz} px). Photos and reviewer are SIMULATED.")

    _step(1, f"synthesising {settings.images} face photos with six lesion types (38% hand-labelled)")
    if not (data / "truth").exists() or len(list((data / "truth").glob("*.xml"))) < settings.images:
        with progress_bar() as bar:
            task = bar.add_task("synthesising", total=settings.images)
            generate(data, images=settings.images, labelled_fraction=0.38, seed=settings.seed, size="small",
                     progress=lambda n: bar.advance(task, n))

    _step(2, "ingesting photos and labelImg XML into the workspace")
    cfg = Config(images=data / "images", labels=data / "labels", imgsz=imgsz, epochs=epochs,
                 retrain_epochs=retrain_epochs, batch=batch, test_size=30, model="auto")
    ws = Workspace.create(ws_root, cfg) if not (ws_root / "annotator.toml").exists() else \
        Workspace.open(ws_root, write=True)
    with ws:
        report = ingest(ws, images=ws.config.images, labels=ws.config.labels)
        counts = ws.store.status_counts()
        say(f"  {counts['images']} photos: {counts['by_status']}")

        _step(3, "bootstrap: training round 0 on the hand-labelled photos, then pre-annotating the rest")
        with progress_bar() as bar:
            train_task = bar.add_task("training round 0", total=epochs)
            pred_task = bar.add_task("pre-annotating", total=None)
            result = run_bootstrap(ws, BootstrapSettings(model="auto", epochs=epochs, imgsz=imgsz, batch=batch),
                                   on_epoch=lambda d, t: bar.update(train_task, completed=d, total=t),
                                   on_predicted=lambda n: bar.advance(pred_task, n))
        test = result.metrics.get("test", {})
        say(f"  round 0 test mAP50 {test.get('map50', 0):.3f}; "
            f"{result.preannotate.predicted if result.preannotate else 0} photos pre-annotated")

        _step(4, "starting a local Label Studio (127.0.0.1 only, offline)")
        server = start_server(ws, port=settings.port)
        client = connect(ws)

        _step(5, "pushing pre-annotations to the review queue, most uncertain first")
        pushed = push(ws, client)
        say(f"  {pushed.created} tasks created, {pushed.replaced} predictions replaced, "
            f"{pushed.up_to_date} already current (project {pushed.project_id})")

        n_review = max(1, int(settings.review_fraction * len(ws.store.task_map())))
        _step(6, f"a SIMULATED dermatologist reviews {n_review} photos in queue order through the Label Studio API")
        simulated = simulate(ws, client, count=n_review)
        say(f"  {simulated.annotated} photos reviewed, actions {simulated.actions}, "
            f"{simulated.lead_time_s / 60:.1f} simulated reviewer minutes")

        _step(7, "pulling the corrections back with provenance")
        pulled = pull(ws, client)
        say(f"  {pulled.stored} reviews stored ({pulled.already_pulled} already pulled, "
            f"{len(pulled.issues)} reported in {pulled.issues_file})")

        _step(8, "retrain round 1: snapshot, warm start from round 0, evaluate, re-predict, re-push")
        row1 = ws.store.round_row(1)
        if row1 is None or row1["stage"] != "done":
            attempt = plan_retrain(ws, 1)
            _train_and_predict(ws, 1, attempt, model=str(round_model_path(ws, 0)), epochs=retrain_epochs,
                               imgsz=imgsz, batch=batch, device=None, verbose=False)
            repushed = push(ws, client)
            report_path = finish_round(ws, 1, attempt, pushed=repushed.to_dict())
        else:
            report_path = ws.round_dir(1, row1["attempt"]) / "report.html"

        _step(9, "the learning curve")
        curve = learning_curve(ws)
        print_curve(curve)
    minutes = (time.perf_counter() - started) / 60
    console.print(f"\n[bold green]demo finished in {minutes:.1f} min.[/] Round report: {report_path}")
    console.print(f"Label Studio is running at [bold]{server.url}[/] — log in with the e-mail and password in "
                  f"{credentials_path(ws_root)} (readable only by you). Stop it with "
                  f"`annotator review serve --stop -w {ws_root}`.")
    return {"curve": curve, "url": server.url, "minutes": minutes}
