"""The pre-annotation engine every round uses: photos in, `model` label versions out, fast.

Decoding 18 MP JPEGs, not the model, is the bottleneck. So: photos are decoded at reduced
size with JPEG DCT scaling (PIL `draft`, ~1/4-1/8 of the work) in a pool of threads (PIL
releases the GIL while decoding) running ahead of the model; the model sees batches of
arrays (half precision on a GPU); boxes are mapped back to full-resolution displayed
coordinates; and a writer thread stores results and writes VOC off the hot path. Where the
model runs on a GPU, JPEGs are decoded there instead, in batches (nvJPEG: `annotator.device_decode`,
`[predict] decode`), with PIL for what the GPU refuses.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from annotator.boxes import boxes_to_photo
from annotator.device_decode import PIL_DECODER, decode_device, decode_stream
from annotator.images import decode_displayed
from annotator.store import Workspace, now_iso
from annotator.types import Box, ImageRecord, LabelVersion, Prediction, Source
from bootstrap.uncertainty import (
    CALIBRATED_JOINT,
    FLIP_CONSISTENCY,
    ScoreCalibration,
    keep_confident,
    score_photo,
    unmirror,
)
from training.constants import PREDICT_FLOOR
from training.detectors.base import Predictor


@dataclass
class PreannotateStats:
    photos: int = 0
    predicted: int = 0
    boxes: int = 0
    skipped_human: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    no_box: int = 0  # predicted photos whose prediction kept no box at the thresholds
    thresholds: dict[str, float] = field(default_factory=dict)  # class -> the confidence threshold applied
    decoders: Counter[str] = field(default_factory=Counter)  # "pil" | "device" -> photos it decoded

    @property
    def images_per_second(self) -> float:
        return self.predicted / self.seconds if self.seconds else 0.0

    def no_box_note(self) -> str | None:
        """The line that says how many photos kept no box, naming the thresholds (None when all kept one)."""
        if not self.no_box:
            return None
        photos = "1 photo" if self.no_box == 1 else f"{self.no_box} photos"
        at = ", ".join(f"{name} {value:g}" for name, value in self.thresholds.items())
        return (
            f"{photos} of {self.predicted} kept no box at the confidence thresholds {at} (the round's; "
            "[predict.thresholds] in annotator.toml overrides them)"
        )

    def to_dict(self) -> dict:
        return {
            "photos": self.photos,
            "predicted": self.predicted,
            "boxes": self.boxes,
            "skipped_human": self.skipped_human,
            "failed": [{"path": p, "error": e} for p, e in self.failed],
            "seconds": round(self.seconds, 2),
            "images_per_second": round(self.images_per_second, 1),
            "no_box": self.no_box,
            "thresholds": dict(self.thresholds),
        }


def auto_batch(device: str | None) -> int:
    """Measured on a 2-core CPU: batch 1-4 beats 32 (cache-bound); on a GPU large batches win."""
    if device == "cpu":
        return 4
    import torch

    return 32 if torch.cuda.is_available() else 4


def predictions_from_raw(
    raw: Sequence[Box],
    record: ImageRecord,
    sx: float,
    sy: float,
    threshold: Callable[[str], float],
    *,
    model_version: str,
    round_no: int,
    score: str = CALIBRATED_JOINT,
    mirrored: Sequence[Box] | None = None,
    calibration: ScoreCalibration | None = None,
) -> Prediction:
    """Map a reduced-decode detection back to the full displayed photo and score the photo. Pure.

    score: `[predict] uncertainty` (`bootstrap.uncertainty.score_photo`); mirrored: for flip consistency,
    the boxes found on the mirrored decode, mapped back onto the decode (`unmirror`); calibration: the round's,
    for `calibrated-joint`."""
    full = boxes_to_photo(raw, sx, sy, record.width, record.height)
    mirrored_full = None if mirrored is None else boxes_to_photo(mirrored, sx, sy, record.width, record.height)
    uncertainty = score_photo(
        score, full, threshold, mirrored_full, calibration=calibration, frame=(record.width, record.height)
    )
    return Prediction(
        image_path=record.path,
        boxes=keep_confident(full, threshold),
        model_version=model_version,
        round=round_no,
        uncertainty=uncertainty,
    )


def _decoded(
    ws: Workspace, records: Sequence[ImageRecord], max_side: int, workers: int
) -> Iterator[tuple[ImageRecord, tuple[np.ndarray, float, float] | Exception]]:
    """Decode ahead of the consumer, in order, with a bounded window (memory stays flat)."""
    window = max(8, workers * 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[ImageRecord, Future]] = deque()
        it = iter(records)
        for rec in it:
            pending.append((rec, pool.submit(decode_displayed, ws.image_path(rec.path), max_side)))
            if len(pending) >= window:
                break
        while pending:
            rec, fut = pending.popleft()
            try:
                yield rec, fut.result()
            except Exception as exc:  # a photo that decoded at ingest but not now: report, go on
                yield rec, exc
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(decode_displayed, ws.image_path(nxt.path), max_side)))


class _Writer(threading.Thread):
    """Stores predictions and writes their VOC mirror while the model works on the next batch."""

    def __init__(self, ws: Workspace, stats: PreannotateStats, on_written: Callable[[int], None] | None) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.stats = stats
        self.on_written = on_written
        self.inbox: queue.Queue[list[Prediction] | None] = queue.Queue(maxsize=16)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while (batch := self.inbox.get()) is not None:
                written = []
                with self.ws.store.transaction():
                    for pred in batch:
                        version = LabelVersion(
                            image_path=pred.image_path,
                            source=Source.MODEL,
                            boxes=pred.boxes,
                            round=pred.round,
                            model_version=pred.model_version,
                            created_at=now_iso(),
                            uncertainty=pred.uncertainty,
                        )
                        vid = self.ws.store.labels.add_label_version(version)
                        if vid is None:
                            self.stats.skipped_human += 1
                            continue
                        written.append((pred, vid, version))
                for _, vid, version in written:
                    self.ws.write_voc_for(replace(version, id=vid))
                self.ws.store.mirror.mark_voc_written([(p.image_path, vid) for p, vid, _ in written])
                self.stats.predicted += len(written)
                self.stats.boxes += sum(len(p.boxes) for p, _, _ in written)
                self.stats.no_box += sum(1 for p, _, _ in written if not p.boxes)
                if self.on_written:
                    self.on_written(len(batch))
        except BaseException as exc:  # surfaced by the caller after join()
            self.error = exc


MAX_CPU_PIPELINES = 4


def _devices(device: str | None) -> list[str | None]:
    """One pipeline per device: '0,1' -> ['0', '1']. On a machine without a GPU, None or 'cpu'
    gives one pipeline per core (each runs its model copy on one thread: Ultralytics pins torch to
    one thread per process here, and ops release the GIL, so pipelines use the cores in parallel)."""
    if device is not None and "," in device:
        return [d.strip() for d in device.split(",") if d.strip()]
    if device in (None, "cpu"):
        import torch

        if device == "cpu" or not torch.cuda.is_available():
            return ["cpu"] * max(1, min(MAX_CPU_PIPELINES, os.cpu_count() or 1))
    return [device]


_COUNTS_LOCK = threading.Lock()  # PreannotateStats.decoders: pipelines finish on their own threads


def _run_pipeline(
    ws: Workspace,
    detector: Predictor,
    records: Sequence[ImageRecord],
    writer: _Writer,
    stats: PreannotateStats,
    *,
    round_no: int,
    model_version: str,
    imgsz: int,
    batch: int,
    workers: int,
    device: str | None,
    progress: Callable[[int], None] | None,
    threshold: Callable[[str], float],
    decode: str = "pil",
    calibration: ScoreCalibration | None = None,
) -> None:
    """Decode ahead -> batch -> predict -> hand to the writer, for one device.

    decode: `[predict] decode`; on the device (`annotator.device_decode`) the photos are decoded in batches
    where the model runs, with PIL for what the device refuses."""
    chunk: list[tuple[ImageRecord, np.ndarray, float, float]] = []
    kwargs: dict[str, Any] = {"conf": PREDICT_FLOOR, "imgsz": imgsz, "device": device}
    stats.thresholds = {name: threshold(name) for name in ws.config.classes}  # named when a photo keeps no box

    flip = ws.config.uncertainty == FLIP_CONSISTENCY

    def flush() -> None:
        if chunk:
            arrays = [c[1] for c in chunk]
            raw = detector.predict_arrays(arrays, **kwargs)
            mirrored: list[list[Box] | None] = [None] * len(chunk)
            if flip:  # the flip-consistency score needs a second pass, on the mirrored photos
                found = detector.predict_arrays([np.ascontiguousarray(a[:, ::-1]) for a in arrays], **kwargs)
                mirrored = [unmirror(m, a.shape[1], a.shape[0]) for m, a in zip(found, arrays, strict=True)]
            writer.inbox.put(
                [
                    predictions_from_raw(
                        r,
                        rec,
                        sx,
                        sy,
                        threshold,
                        model_version=model_version,
                        round_no=round_no,
                        score=ws.config.uncertainty,
                        mirrored=m,
                        calibration=calibration,
                    )
                    for (rec, _, sx, sy), r, m in zip(chunk, raw, mirrored, strict=True)
                ]
            )
            chunk.clear()

    counts: Counter[str] = Counter()  # photos per decoder
    on = decode_device(decode, device)
    photos = (
        _decoded(ws, records, imgsz, workers)
        if on is None
        else zip(
            records,
            decode_stream(
                [ws.image_path(r.path) for r in records],
                device=on,
                max_side=imgsz,
                batch=batch,
                workers=workers,
                counts=counts,
            ),
            strict=True,
        )
    )
    for rec, decoded in photos:
        if writer.error:
            return
        if isinstance(decoded, Exception):
            stats.failed.append((rec.path, f"{type(decoded).__name__}: {decoded}"))
            if progress:
                progress(1)
            continue
        if on is None:
            counts[PIL_DECODER] += 1
        chunk.append((rec, *decoded))
        if len(chunk) >= batch:
            flush()
    flush()
    with _COUNTS_LOCK:
        stats.decoders.update(counts)


def preannotate(
    ws: Workspace,
    detector: Predictor,
    records: Iterable[ImageRecord],
    *,
    round_no: int,
    model_version: str,
    imgsz: int = 640,
    batch: int = 0,
    workers: int = 0,
    device: str | None = None,
    progress: Callable[[int], None] | None = None,
    threshold: Callable[[str], float] | None = None,
    decode: str | None = None,
    calibration: ScoreCalibration | None = None,
) -> PreannotateStats:
    """Predict every record and store each as a `model` label version (never over a human label).

    decode: "auto" (on the GPU where the model runs on one, else PIL), "pil" or "device" (the pipeline's device,
    the CPU included); None: the workspace's `[predict] decode`.

    threshold: a class's confidence threshold (the round's: `training.thresholds.threshold_rule`);
    None: the workspace's configured ones. calibration: the round's score calibration (its info), which the
    `calibrated-joint` review priority reads raw scores through.

    device: None (GPU if present), "cpu", "0", or "0,1,...": one pipeline (decoder threads +
    its own copy of the model) per GPU, photos dealt round-robin, one shared writer.
    """
    # photos of one displayed size decode to one shape, so a batch of them is letterboxed to one rectangle
    # (a batch of mixed shapes is padded to a square: ~40% more pixels through the model)
    records = sorted(records, key=lambda r: (r.width, r.height))
    stats = PreannotateStats(photos=len(records))
    devices = _devices(device)
    batch = batch if batch > 0 else auto_batch(devices[0])
    workers = workers if workers > 0 else (os.cpu_count() or 1)
    writer = _Writer(ws, stats, progress)
    writer.start()
    started = time.perf_counter()
    errors: list[BaseException] = []

    def run(i: int, dev: str | None) -> None:
        try:
            model = detector if i == 0 else detector.replicate()
            _run_pipeline(
                ws,
                model,
                records[i :: len(devices)],
                writer,
                stats,
                round_no=round_no,
                model_version=model_version,
                imgsz=imgsz,
                batch=batch,
                workers=max(1, workers // len(devices)),
                device=dev,
                progress=progress,
                threshold=threshold or ws.config.threshold_for,
                decode=decode or ws.config.predict_decode,
                calibration=calibration,
            )
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    try:
        if len(devices) == 1:
            run(0, devices[0])
        else:
            threads = [threading.Thread(target=run, args=(i, d), daemon=True) for i, d in enumerate(devices)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        writer.inbox.put(None)
        writer.join()
        stats.seconds = time.perf_counter() - started
    for exc in [*errors, writer.error]:
        if exc is not None:
            raise exc
    return stats
