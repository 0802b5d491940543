"""Pre-annotation throughput, fairly: the engine (PyTorch and ONNX Runtime backends) against the naive loop and
Ultralytics' folder predict, on the same photos, each method with its best settings, the file cache warm.

  naive          one `model.predict(path)` per photo (what a per-task ML backend does)
  folder         Ultralytics `predict(folder, stream=True)`
  engine         bootstrap.preannotate: reduced-size DCT decode in threads, batched arrays, one pipeline per
                 core (per GPU on a GPU), boxes mapped back to full resolution, results stored and written as VOC
                 off the hot path; with the PyTorch model, and on the CPU also with its ONNX export
                 (training.detectors.runtime)

Fairness: every file is read once before any timing; each method is warmed up on other photos first; the naive
loop and folder predict try 1 and all torch threads (and folder batch 1 and 4; 32 too on a GPU) on a few photos
and keep their fastest; all methods are timed on the same photos, taking turns on slices of them (--turns) so a
change in the machine's load falls on all alike. "cores busy" is the process's CPU time over the wall time.
The engine's boxes are checked against the naive loop's: the share matched by a same-class box at IoU >= 0.9
(scores >= --agree-conf; an untrained YAML model finds nothing, so pass a round's model.pt for this check).
The machine's load average is printed with the figures: other work on the cores slows every method.

  python -m benchmarks.preannotate [--photos 100] [--size dslr] [--model yolo11n.yaml | rounds/000/model.pt]
                                   [--device cpu | 0] [--agree-conf 0.25] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.offline import prepare_ultralytics

CLASSES = ("sl", "fre", "mel", "caf", "ota", "hori")


@dataclass(frozen=True)
class Timing:
    method: str
    settings: str
    threads: int  # model threads per pipeline x pipelines (the naive loop decodes on its one thread)
    photos: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.photos / self.seconds

    @property
    def cores_busy(self) -> float:
        return self.cpu_seconds / self.seconds


def timed(method: str, settings: str, threads: int, photos: int, run: Callable[[], Any]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Timing(method, settings, threads, photos, time.perf_counter() - wall, time.process_time() - cpu)


def warm_file_cache(photos: Sequence[Path]) -> tuple[float, float]:
    """Read every photo once so no method pays the first read from disk; (MB read, seconds)."""
    started, size = time.perf_counter(), 0
    for p in photos:
        size += len(p.read_bytes())
    return size / 1e6, time.perf_counter() - started


def boxes_of(result: Any) -> list:
    from annotator.types import Box

    if result.boxes is None:
        return []
    names = result.names
    return [
        Box(names[int(c)], *map(float, xyxy), score=float(s))
        for xyxy, s, c in zip(
            result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist(), strict=True
        )
    ]


def agreement(reference: dict[str, list], other: dict[str, list], min_iou: float = 0.9) -> tuple[int, int, int]:
    """(matched pairs, reference boxes, other boxes): same class, IoU >= min_iou, each box used once, best first."""
    from annotator.boxes import iou

    matched = n_ref = n_other = 0
    for photo, ref in reference.items():
        candidates = sorted(other.get(photo, []), key=lambda b: -(b.score or 0.0))
        n_ref, n_other = n_ref + len(ref), n_other + len(candidates)
        for box in sorted(ref, key=lambda b: -(b.score or 0.0)):
            best = max(((iou(box, c), k) for k, c in enumerate(candidates) if c.label == box.label), default=None)
            if best is not None and best[0] >= min_iou:
                matched += 1
                candidates.pop(best[1])
    return matched, n_ref, n_other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100, help="photos every method is timed on")
    parser.add_argument("--size", default="dslr", help="synthetic photo size: small, phone (1600x1200), dslr (18 MP)")
    parser.add_argument("--model", default="yolo11n.yaml", help="a YAML (untrained) or a round's model.pt")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default=None, help="cpu or a GPU index such as 0 (default: the GPU if any)")
    parser.add_argument("--calibrate", type=int, default=6, help="photos each candidate setting is tried on")
    parser.add_argument("--turns", type=int, default=4, help="slices the methods take turns on")
    parser.add_argument("--agree-conf", type=float, default=0.25, help="boxes scored at least this are compared")
    parser.add_argument("--data", type=Path, default=None, help="reuse/keep the synthetic photos here")
    args = parser.parse_args()

    prepare_ultralytics()
    import torch

    from annotator.config import Config
    from annotator.ingest import ingest
    from annotator.store import Workspace
    from annotator.synthetic import generate
    from bootstrap.preannotate import _devices, auto_batch, preannotate
    from training.constants import PREDICT_FLOOR
    from training.detectors.runtime import RuntimePredictor, export_onnx, exported_path, runs_on_cpu
    from training.detectors.ultralytics import UltralyticsDetector, default_device

    device = args.device or default_device()
    on_cpu = runs_on_cpu(device)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-preannotate-"))
    data = args.data or tmp / "data"
    extra = args.calibrate + 2  # photos for warm-up and calibration, never timed
    if not (data / "images").exists() or len(list((data / "images").glob("*.jpg"))) < args.photos + extra:
        shutil.rmtree(data / "images", ignore_errors=True)
        t = time.perf_counter()
        generate(data, images=args.photos + extra, labelled_fraction=0.0, seed=7, size=args.size, workers=cores)
        print(f"generated {args.photos + extra} {args.size} photos in {time.perf_counter() - t:.1f} s")
    every = sorted((data / "images").glob("*.jpg"))[: args.photos + extra]
    spare, photos = every[:extra], every[extra:]
    mb, seconds = warm_file_cache(every)
    print(f"file cache warmed: {mb:.0f} MB read in {seconds:.1f} s")

    detector = UltralyticsDetector(list(CLASSES), args.model)
    backends: list[tuple[str, Any]] = [("PyTorch", detector)]
    export_note = "ONNX Runtime: CPU only, not run on a GPU"
    if on_cpu:
        weights = tmp / "model.pt" if args.model.endswith((".yaml", ".yml")) else Path(args.model)
        if weights == tmp / "model.pt":
            detector.save(weights)
        elif not exported_path(weights).exists():
            weights = Path(shutil.copyfile(weights, tmp / "model.pt"))  # never write beside the user's file
        t = time.perf_counter()
        export_onnx(weights)
        export_note = f"ONNX export {time.perf_counter() - t:.1f} s (once per round, cached beside model.pt)"
        backends.append(("ONNX Runtime", RuntimePredictor.from_weights(detector, weights)))
    model = detector.model
    predict = {"imgsz": args.imgsz, "device": device, "half": not on_cpu, "verbose": False, "conf": PREDICT_FLOOR}
    model.predict(str(spare[0]), **predict)  # sets up Ultralytics' predictor (which pins torch to its thread count)
    print(
        f"photos: {len(photos)} x {args.size} ({mb / len(every):.2f} MB each), model {args.model}, imgsz "
        f"{args.imgsz}, device {device}, {cores} cores; {export_note}"
    )

    # the naive loop and folder predict: keep each one's fastest setting, tried on the spare photos
    def naive_loop(paths: Sequence[Path], found: dict[str, list] | None = None) -> None:
        for p in paths:
            result = model.predict(str(p), **predict)[0]
            if found is not None:
                found[p.name] = [b for b in boxes_of(result) if (b.score or 0.0) >= args.agree_conf]

    def folder_of(paths: Sequence[Path], name: str) -> Path:
        folder = tmp / name
        folder.mkdir()
        for p in paths:
            os.symlink(p.resolve(), folder / p.name)
        return folder

    def folder_predict(folder: Path, batch: int) -> None:
        for _ in model.predict(str(folder), batch=batch, stream=True, **predict):
            pass

    def fastest(options: Sequence[tuple[int, int]], trial: Callable[[int], None]) -> tuple[int, int]:
        """The (batch, torch threads) option whose trial on the spare photos ran fastest."""
        rates = {}
        for batch, threads in options:
            torch.set_num_threads(threads)
            rates[(batch, threads)] = timed("", "", threads, args.calibrate, lambda b=batch: trial(b)).rate
        return max(rates, key=rates.__getitem__)

    # CPU: small batches win (and a batch of 32 full 18 MP decodes holds 1.7 GB); a GPU wants large ones
    thread_options = (1, cores) if on_cpu else (torch.get_num_threads(),)  # a GPU runs the model, not the threads
    batch_options = (1, 4) if on_cpu else (1, 4, 32)
    calibration = folder_of(spare[2:], "calibration")
    _, naive_threads = fastest([(1, n) for n in thread_options], lambda _batch: naive_loop(spare[2:]))
    folder_batch, folder_threads = fastest(
        [(b, n) for b in batch_options for n in thread_options], lambda batch: folder_predict(calibration, batch)
    )

    ws = Workspace.create(tmp / "ws", Config(images=data / "images"))
    ingest(ws, images=data / "images")
    by_name = {r.path: r for r in ws.store.labels.images()}
    pipelines = len(_devices(device))

    def engine(det: Any, chosen: Sequence[Path], version: str) -> None:
        torch.set_num_threads(1)  # as Ultralytics leaves it: each engine pipeline runs its model on one thread
        preannotate(
            ws,
            det,
            [by_name[p.name] for p in chosen],
            round_no=0,
            model_version=version,
            imgsz=args.imgsz,
            device=device,
            threshold=lambda _label: args.agree_conf,
        )

    naive_boxes: dict[str, list] = {}

    def naive_turn(chunk: Sequence[Path], _turn: int) -> None:
        torch.set_num_threads(naive_threads)
        naive_loop(chunk, naive_boxes)

    def folder_turn(chunk: Sequence[Path], turn: int) -> None:
        torch.set_num_threads(folder_threads)
        folder_predict(folder_of(chunk, f"timed-{turn}"), folder_batch)

    def engine_turn(det: Any, name: str) -> Callable[[Sequence[Path], int], None]:
        return lambda chunk, turn: engine(det, chunk, f"bench-{name}-{turn}")

    where = "1 thread" if on_cpu else f"GPU {device}"
    methods: list[tuple[str, str, int, Callable[[Sequence[Path], int], None]]] = [
        ("naive: model.predict(path) per photo", f"torch threads {naive_threads}", naive_threads, naive_turn),
        (
            "ultralytics predict(folder)",
            f"batch {folder_batch}, torch threads {folder_threads}",
            folder_threads,
            folder_turn,
        ),
        *[
            (
                f"engine, {name}",
                f"{pipelines} pipelines x {where}, batch {auto_batch(device)}",
                pipelines,
                engine_turn(det, name),
            )
            for name, det in backends
        ],
    ]
    for name, det in backends:
        engine(det, spare[:2], f"warm-{name}")
    # the methods take turns on slices of the photos, in a rotating order, so a change in the machine's load
    # falls on all of them alike
    chunks = [photos[k :: args.turns] for k in range(args.turns)]
    spent: dict[str, list[Timing]] = {m[0]: [] for m in methods}
    for k, chunk in enumerate(chunks):
        for name, settings, threads, run in methods[k % len(methods) :] + methods[: k % len(methods)]:
            spent[name].append(timed(name, settings, threads, len(chunk), lambda run=run, c=chunk, k=k: run(c, k)))
    rows = [
        Timing(
            name,
            settings,
            threads,
            len(photos),
            sum(t.seconds for t in spent[name]),
            sum(t.cpu_seconds for t in spent[name]),
        )
        for name, settings, threads, _ in methods
    ]
    engine_boxes: dict[str, dict[str, list]] = {}
    for name, _ in backends:
        engine_boxes[name] = {}
        for p in photos:
            versions = [
                v for v in ws.store.labels.history(p.name) if (v.model_version or "").startswith(f"bench-{name}-")
            ]
            engine_boxes[name][p.name] = list(versions[-1].boxes) if versions else []
    ws.close()
    load_after = os.getloadavg()

    naive = rows[0].rate
    print(
        f"\n{'method':<38}{'settings':<34}{'threads':>8}{'cores busy':>11}{'CPU ms/photo':>13}{'photos':>7}"
        f"{'s':>7}{'img/s':>7}{'vs naive':>9}"
    )
    for r in rows:
        cpu_ms = r.cpu_seconds / r.photos * 1000
        print(
            f"{r.method:<38}{r.settings:<34}{r.threads:>8}{r.cores_busy:>11.2f}{cpu_ms:>13.0f}{r.photos:>7}"
            f"{r.seconds:>7.1f}{r.rate:>7.2f}{r.rate / naive:>8.2f}x"
        )
    print(
        f"load average (1, 5, 15 min) before {', '.join(f'{v:.1f}' for v in load_before)}; after "
        f"{', '.join(f'{v:.1f}' for v in load_after)} ({cores} cores)"
    )
    fastest_engine = backends[-1][0]
    comparisons = [(f"engine ({fastest_engine}) vs naive", naive_boxes, engine_boxes[fastest_engine])]
    if fastest_engine != "PyTorch":
        comparisons.append(
            (f"engine ({fastest_engine}) vs engine (PyTorch)", engine_boxes["PyTorch"], engine_boxes[fastest_engine])
        )
    for name, reference, other in comparisons:
        matched, n_ref, n_other = agreement(reference, other)
        if n_ref == 0 and n_other == 0:
            print(
                f"boxes, {name}: none scored >= {args.agree_conf} (an untrained model? pass --model a round's model.pt)"
            )
            continue
        print(
            f"boxes, {name}: {matched} matched at IoU >= 0.9 of {n_ref} and {n_other} scored >= "
            f"{args.agree_conf} ({matched / max(n_ref, n_other):.1%} of the larger set)"
        )
    shutil.rmtree(tmp, ignore_errors=True)  # the photos stay when --data names their folder


if __name__ == "__main__":
    main()
