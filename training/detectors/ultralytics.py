"""Ultralytics detectors (YOLOv5u/v8/11, RT-DETR, our YOLOv4-style YAML) behind the Detector interface.

Models come from a YAML that ships with Ultralytics (or with us) or a local weights file the
user names: nothing is ever downloaded (`training.offline` switches off every network path).
All Ultralytics output goes under the `workdir` the caller gives.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import TrainingError
from annotator.types import Box
from training.detectors.base import Detector, ProgressCallback, TrainingView, TrainResult, TrainSettings
from training.offline import prepare_ultralytics

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def _resolve_spec(spec: str) -> str:
    """A YAML name the package knows, a YAML we ship, or a local file; never a download."""
    path = Path(spec).expanduser()
    if path.exists():
        return str(path.resolve())
    ours = SHIPPED_MODELS_DIR / (spec if spec.endswith(".yaml") else spec + ".yaml")
    if ours.exists():
        return str(ours)
    if spec.endswith((".yaml", ".yml")):
        return spec  # resolved by Ultralytics from its packaged cfg/models
    raise TrainingError(f"model {spec!r} is not a local file; name a YAML (e.g. yolo11n.yaml) or the path of weights "
                        "you have on disk (nothing is downloaded)")


def is_ultralytics_checkpoint(path: Path) -> bool:
    """True when `path` is a torch checkpoint whose pickle refers to Ultralytics' classes (what training
    and `YOLO.save` write). Only the names the pickle refers to are read: nothing in it is executed."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a torch zip file
        return False
    return any(name.startswith("ultralytics.") for name in names)


def default_device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def warmup_epochs(n_train: int, settings: TrainSettings, default: float = 3.0) -> float:
    """Ultralytics warms up for max(3 epochs, 100 iterations). On a small seed set that floor can be
    most of the training (66 photos, batch 16, 25 epochs: 100 of 125 iterations), so warm-up is
    switched off when 100 iterations exceed a tenth of the run. Measured on the demo's seed set
    (66 photos, 25 epochs, 320 px): test mAP50 0.00 with the default, 0.05 without (batch 8)."""
    iterations = math.ceil(max(1, n_train) / max(1, settings.batch)) * settings.epochs
    return 0.0 if 100 > 0.1 * iterations else default


class UltralyticsDetector(Detector):
    family = "ultralytics"

    def __init__(self, classes: Sequence[str], model: str = "yolo11n.yaml", *, verbose: bool = False) -> None:
        super().__init__(classes)
        prepare_ultralytics()
        self.spec = _resolve_spec(model)
        self.verbose = verbose
        self._quiet()
        from ultralytics import RTDETR, YOLO

        cls = RTDETR if "rtdetr" in Path(self.spec).name.lower() else YOLO
        try:
            self.model = cls(self.spec)
        except (FileNotFoundError, OSError) as exc:
            raise TrainingError(f"cannot build model {model!r} ({exc}); check the name or path") from exc
        self._half = False

    def _quiet(self) -> None:
        from ultralytics.utils import LOGGER

        LOGGER.setLevel(logging.INFO if self.verbose else logging.WARNING)

    def train(self, view: TrainingView, settings: TrainSettings, workdir: Path,
              progress: ProgressCallback | None = None) -> TrainResult:
        workdir.mkdir(parents=True, exist_ok=True)
        device = settings.device or default_device()
        started = time.perf_counter()
        if progress:
            self.model.add_callback("on_fit_epoch_end",
                                    lambda trainer: progress(trainer.epoch + 1, trainer.epochs))
        args: dict[str, Any] = dict(data=str(view.data_yaml), epochs=settings.epochs, imgsz=settings.imgsz,
                                    warmup_epochs=warmup_epochs(len(view.images.get("train", [])), settings),
                                    batch=settings.batch, device=device, project=str(workdir), name="train",
                                    exist_ok=True, plots=False, seed=settings.seed, deterministic=False,
                                    workers=settings.workers, patience=settings.patience, verbose=settings.verbose,
                                    amp=device != "cpu", **settings.extra)
        try:
            self.model.train(**args)
        except (FileNotFoundError, RuntimeError) as exc:
            raise TrainingError(f"training failed ({exc}); see {workdir}/train") from exc
        trainer = self.model.trainer
        best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
        self.model = type(self.model)(str(best))
        self._quiet()
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        return TrainResult(weights=best, metrics=metrics, train_seconds=time.perf_counter() - started,
                           epochs_run=int(trainer.epoch) + 1)

    def validate(self, view: TrainingView, split: str, *, imgsz: int, batch: int, workdir: Path,
                 device: str | None = None) -> dict[str, Any]:
        """Ultralytics' own mAP on a split of the view (per class over the classes present)."""
        if not view.images.get(split):
            return {}
        result = self.model.val(data=str(view.data_yaml), split=split, imgsz=imgsz, batch=batch,
                                device=device or default_device(), project=str(workdir), name=f"val-{split}",
                                exist_ok=True, plots=False, verbose=False)
        per_class = {}
        for i, cls_index in enumerate(result.box.ap_class_index):
            p, r, ap50, ap = result.box.class_result(i)
            per_class[self.classes[int(cls_index)]] = {"precision": float(p), "recall": float(r),
                                                       "map50": float(ap50), "map50_95": float(ap)}
        return {"map50": float(result.box.map50), "map50_95": float(result.box.map),
                "precision": float(result.box.mp), "recall": float(result.box.mr), "per_class": per_class,
                "images": len(view.images[split])}

    def predict_arrays(self, images: Sequence[np.ndarray], *, conf: float = 0.01, imgsz: int = 640,
                       device: str | None = None, half: bool | None = None) -> list[list[Box]]:
        if not images:
            return []
        device = device or default_device()
        use_half = (device != "cpu") if half is None else half
        bgr = [np.ascontiguousarray(a[..., ::-1]) for a in images]  # Ultralytics takes arrays as BGR
        results = self.model.predict(bgr, conf=conf, imgsz=imgsz, device=device, half=use_half, verbose=False,
                                     batch=len(bgr))
        out: list[list[Box]] = []
        for res in results:
            boxes = []
            if res.boxes is not None and len(res.boxes):
                xyxy = res.boxes.xyxy.cpu().numpy()  # (N, 4) in the array's pixels
                scores = res.boxes.conf.cpu().numpy()  # (N,)
                cls_idx = res.boxes.cls.cpu().numpy().astype(int)  # (N,)
                for (x1, y1, x2, y2), s, c in zip(xyxy, scores, cls_idx, strict=True):
                    boxes.append(Box(self.classes[c], float(x1), float(y1), float(x2), float(y2), score=float(s)))
            out.append(boxes)
        return out

    def replicate(self) -> UltralyticsDetector:
        """A copy with its own network and no predictor (Ultralytics' predictor holds a lock, which
        cannot be deep-copied, and is not safe to share between threads)."""
        twin = copy.copy(self)
        twin.model = copy.copy(self.model)
        twin.model._modules = dict(self.model._modules)  # a shallow copy would share the submodule table
        twin.model.model = copy.deepcopy(self.model.model)
        twin.model.predictor = None
        twin.model.callbacks = {k: list(v) for k, v in self.model.callbacks.items()}
        return twin

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        ckpt = getattr(self.model, "ckpt_path", None)
        if ckpt and Path(ckpt).exists():
            shutil.copyfile(ckpt, path)
        else:
            self.model.save(str(path))
        return path

    @classmethod
    def load(cls, path: Path, classes: Sequence[str], *, verbose: bool = False) -> UltralyticsDetector:
        if not Path(path).exists():
            raise TrainingError(f"{path}: model weights not found; run the round again or name an existing file")
        return cls(classes, str(path), verbose=verbose)

    @property
    def parameter_count(self) -> int:
        return int(sum(p.numel() for p in self.model.model.parameters()))
