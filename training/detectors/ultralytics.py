"""Ultralytics detectors (YOLOv5u/v8/11, RT-DETR, our YOLOv4-style YAML) behind the Detector interface.

Models come from a YAML that ships with Ultralytics (or with us) or a local weights file the
user names: nothing is ever downloaded (`training.offline` switches off every network path).
All Ultralytics output goes under the `workdir` the caller gives.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.errors import TrainingError
from annotator.types import Box
from training.constants import PREDICT_FLOOR
from training.detectors.base import Detector, ProgressCallback, Recipe, TrainingView, TrainResult, TrainSettings
from training.detectors.pretrained import PretrainedWeights, checkpoint_file, plain_state_dict, record, transfer_by_name
from training.detectors.registry import DetectorFamily, register_family
from training.detectors.stopping import EarlyStop
from training.offline import prepare_ultralytics
from training.pretraining.starts import read_start, transferable

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def _resolve_spec(spec: str) -> str:
    """A YAML name the package knows, a YAML we ship, or a local file; never a download."""
    path = Path(spec).expanduser()
    if path.exists():
        return str(path.resolve())
    ours = SHIPPED_MODELS_DIR / (spec if spec.endswith(".yaml") else spec + ".yaml")
    # a scale of a YAML we ship ("yolov4l-csp.yaml" for yolov4-csp.yaml's "l"): Ultralytics reads the scale from the
    # name and the file from the name without it, with this same pattern
    unscaled = ours.with_name(re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", ours.name))
    if ours.exists() or unscaled.exists():
        return str(ours)
    if spec.endswith((".yaml", ".yml")):
        return spec  # resolved by Ultralytics from its packaged cfg/models
    raise TrainingError(
        f"model {spec!r} is not a local file; name a YAML (e.g. yolo11n.yaml) or the path of weights "
        "you have on disk (nothing is downloaded)"
    )


def is_ultralytics_checkpoint(path: Path) -> bool:
    """True when `path` is a torch checkpoint whose pickle refers to Ultralytics' classes (what training
    and `YOLO.save` write). Only the names the pickle refers to are read: nothing in it is executed."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a torch zip file
        return False
    return any(name.startswith("ultralytics.") for name in names)


def _ultralytics_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of an Ultralytics checkpoint (EMA weights when present), e.g. yolo11n.pt or yolo11n-cls.pt.
    Its pickle is unpickled by Ultralytics, as `YOLO(path)` would: name only files you trust."""
    if not is_ultralytics_checkpoint(path):
        raise TrainingError(
            f"{path}: neither a state_dict nor an Ultralytics checkpoint; name yolo*.pt or "
            "yolo*-cls.pt weights, or a file of tensors"
        )
    from ultralytics.nn.tasks import load_checkpoint

    try:
        network, _ = load_checkpoint(str(path))
    except Exception as exc:  # a truncated or foreign file
        raise TrainingError(f"{path}: cannot read the checkpoint ({exc}); name another file") from exc
    return {k: v for k, v in network.float().state_dict().items()}


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


def _trainer_starting_from(model: Any) -> type:
    """The task's trainer, with its fresh network loaded from `model`'s (which holds the pretrained transfer)."""
    base = model._smart_load("trainer")
    start = model.model

    class StartFromTransferred(base):  # type: ignore[misc,valid-type]
        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> Any:
            return super().get_model(cfg=cfg, weights=start if weights is None else weights, verbose=verbose)

    return StartFromTransferred


FINE_TUNE_LR0 = 0.0005  # a warm start's AdamW learning rate, half a fresh start's (docs/training-recipe.md)
FACE_AUGMENTATION: dict[str, float] = {
    "fliplr": 0.5,  # a mirrored face is a plausible face, and lesions sit on either side
    "flipud": 0.0,  # an upside-down face is not
    "degrees": 0.0,  # clinical photos are taken upright
    "hsv_h": 0.0,  # hue tells blue-grey dermal pigment (ota, hori) from brown (sl, fre, mel, caf): keep it
    "hsv_s": 0.4,  # mild saturation and brightness changes: cameras and lighting differ, lesion contrast must stay
    "hsv_v": 0.3,
}


def fresh_lr0(n_classes: int) -> float:
    """AdamW's learning rate for a fresh start: what Ultralytics' `optimizer=auto` picks for a short run, made
    explicit so a longer run (which `auto` would hand to SGD at 0.01) keeps the same optimizer."""
    return round(0.002 * 5 / (4 + n_classes), 6)


def cpu_threads(requested: int | None) -> int:
    """Threads for CPU training: as requested, else every core this process may run on."""
    if requested is not None:
        return max(1, requested)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def recipe_args(n_train: int, n_classes: int, settings: TrainSettings, *, warm_start: bool) -> dict[str, Any]:
    """Ultralytics train arguments for small seed sets on the CPU; measured in docs/training-recipe.md.

    - One optimizer step per batch (`nbs` = batch): Ultralytics accumulates gradients up to a nominal batch
      of 64, which gives a 72-photo seed set at batch 8 about one optimizer step per epoch.
    - AdamW, explicitly; a warm start (round N from round N-1's weights) at FINE_TUNE_LR0 with no warm-up, so the
      fine-tune refines round N-1 instead of throwing it away (at a fresh start's rate its first epoch lost 3/4
      of round N-1's val mAP50).
    - Warm-up on a fresh start only where Ultralytics' 100-iteration floor would not eat the run (`warmup_epochs`).
    - Augmentation that suits face photos (FACE_AUGMENTATION); mosaic as Ultralytics does, off for the last 10
      epochs (`close_mosaic`), which also covers a short fine-tune whole.
    - Early stopping on val after half the run without improvement (at least 10 epochs); the best epoch on val
      is the round's model either way.
    - Photos decoded once and kept resized in RAM (`cache="ram"`; Ultralytics checks the memory and skips it
      when short), as mosaic reads four photos per sample every epoch. Measured (benchmarks/train_cache.py, 120
      real face photos of at most 2 MP, 320 px, 2 CPU cores): 7.4 s an epoch decoding, 7.1 s cached, 1.05x:
      little here; 18 MP DSLR photos decode slower (not measured).
    """
    patience = settings.patience if settings.patience is not None else max(10, settings.epochs // 2)
    return {
        "nbs": settings.batch,
        "optimizer": "AdamW",
        "lr0": FINE_TUNE_LR0 if warm_start else fresh_lr0(n_classes),
        "warmup_epochs": 0.0 if warm_start else warmup_epochs(n_train, settings),
        "patience": patience,
        "close_mosaic": 10,
        "cache": "ram",
        **FACE_AUGMENTATION,
    }


def reference_args(settings: TrainSettings) -> dict[str, Any]:
    """Ultralytics train arguments for `Recipe.REFERENCE`: its own defaults for the optimizer, learning rate and
    schedule (`optimizer=auto`: AdamW at 0.002 * 5 / (4 + classes) up to 10,000 iterations, MuSGD at 0.01 beyond;
    lrf 0.01 linear decay; 3 warm-up epochs; weight decay 5e-4), with what the benchmark's protocol fixes for every
    family: one optimizer step per batch (`nbs` = batch, as the torchvision loop steps), the face augmentation, the
    protocol's patience, and the photos kept decoded in RAM (docs/benchmark-protocol.md)."""
    return {
        "nbs": settings.batch,
        "optimizer": "auto",
        "patience": settings.patience if settings.patience is not None else 100,  # Ultralytics' default
        "close_mosaic": 10,
        "cache": "ram",
        **FACE_AUGMENTATION,
    }


Callbacks = list[tuple[str, Callable[[Any], None]]]  # (Ultralytics event, callback)


def _stop_callbacks(stop: EarlyStop) -> Callbacks:
    """Callbacks feeding each epoch's val mAPs to the stopping rule at `on_fit_epoch_end`: its horizon becomes the
    trainer's `epochs` (Ultralytics' linear schedule and its last-epoch test read it each step), its stop the
    trainer's (checked right after). Ultralytics calls `on_fit_epoch_end` once more after its final validation of
    best.pt; that call follows no `on_train_epoch_end`, is no epoch, and is ignored."""
    trained = [False]  # an epoch has trained since the rule last counted one

    def on_train_epoch_end(trainer: Any) -> None:
        trained[0] = True

    def on_fit_epoch_end(trainer: Any) -> None:
        if not trained[0]:
            return
        trained[0] = False
        metrics = trainer.metrics or {}
        reason = stop.epoch_done(metrics.get("metrics/mAP50(B)"), metrics.get("metrics/mAP50-95(B)"))
        if stop.horizon < trainer.epochs:
            trainer.epochs = trainer.args.epochs = stop.horizon
        if reason is not None:
            trainer.stop = True

    return [("on_train_epoch_end", on_train_epoch_end), ("on_fit_epoch_end", on_fit_epoch_end)]


AUGMENTATION_ARGS = ("fliplr", "flipud", "degrees", "hsv_h", "hsv_s", "hsv_v", "mosaic", "close_mosaic", "scale")


class UltralyticsDetector(Detector):
    family = "ultralytics"

    def __init__(
        self,
        classes: Sequence[str],
        model: str = "yolo11n.yaml",
        *,
        pretrained: str | Path | None = None,
        verbose: bool = False,
    ) -> None:
        """model: a YAML (random start) or a weights file (a warm start). pretrained: a local Ultralytics
        detection or classification checkpoint (or a state_dict) whose tensors are transferred, by name and
        shape, into the model built from the YAML for these classes."""
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
        if pretrained is not None:
            self.pretrained = self._transfer(checkpoint_file(pretrained))

    @property
    def warm_start(self) -> bool:
        """True when the model was loaded from trained weights (round N-1's model.pt), not built from a YAML."""
        return bool(self.model.ckpt)

    def _transfer(self, path: Path) -> PretrainedWeights:
        """Rebuild the network for this detector's classes and copy in the checkpoint's tensors that fit."""
        if self.warm_start:
            raise TrainingError(
                f"{self.spec}: already trained weights; `pretrained` starts a model built from a "
                "YAML (e.g. yolo11n.yaml), so name one or drop `pretrained`"
            )
        state = plain_state_dict(path)
        if state is None:
            state = _ultralytics_state_dict(path)
        held = len(state)
        state = transferable(state, read_start(path), self.classes)  # a start's head for other classes stays out
        built = self.model.model
        config = copy.deepcopy(built.yaml)
        config["nc"] = len(self.classes)
        network = type(built)(config, nc=len(self.classes), verbose=False)
        network.names = dict(enumerate(self.classes))
        network.args, network.task = getattr(built, "args", {}), getattr(built, "task", "detect")
        self.model.model = network
        transferred = transfer_by_name(network, state)
        if self.verbose:
            logging.getLogger(__name__).info(
                "%s: %d of %d tensors transferred", path.name, len(transferred), len(network.state_dict())
            )
        return record(path, len(transferred), held, network)

    def _quiet(self) -> None:
        from ultralytics.utils import LOGGER

        LOGGER.setLevel(logging.INFO if self.verbose else logging.WARNING)

    def train(
        self, view: TrainingView, settings: TrainSettings, workdir: Path, progress: ProgressCallback | None = None
    ) -> TrainResult:
        """Ultralytics' trainer with `settings.recipe`'s arguments, stopped by the rule every family shares
        (training.detectors.stopping, fed from an epoch-end callback); its best epoch on val is the model."""
        workdir.mkdir(parents=True, exist_ok=True)
        device = settings.device or default_device()
        args = self._train_args(view, settings, workdir, device)
        stop = EarlyStop(
            ceiling=settings.epochs, patience=args["patience"] or None, budget_minutes=settings.budget_minutes
        )
        callbacks = self._callbacks(stop, settings, device, progress)
        # Ultralytics rebuilds a YAML-built model from scratch in its trainer: start it from the transferred weights
        trainer = None if self.warm_start or self.pretrained is None else _trainer_starting_from(self.model)
        import torch

        threads_before = torch.get_num_threads()
        try:
            # Ultralytics writes some progress (the image cache's bar) to stdout whatever its verbosity: keep
            # stdout for the tool's own output (`--json`)
            with contextlib.redirect_stdout(sys.stderr):
                self.model.train(trainer=trainer, **args)
        except (FileNotFoundError, RuntimeError) as exc:
            raise TrainingError(f"training failed ({exc}); see {workdir}/train") from exc
        finally:
            torch.set_num_threads(threads_before)  # Ultralytics' select_device (and our callback) changed it
            for event, callback in callbacks:
                self.model.callbacks[event].remove(callback)
        return self._trained(view, settings, stop)

    def _train_args(self, view: TrainingView, settings: TrainSettings, workdir: Path, device: str) -> dict[str, Any]:
        """Ultralytics' train arguments for this run (recorded, less the paths, as `train_args`)."""
        n_train = len(view.images.get("train", []))
        recipe = (
            reference_args(settings)
            if settings.recipe is Recipe.REFERENCE
            else recipe_args(n_train, len(self.classes), settings, warm_start=self.warm_start)
        )
        args: dict[str, Any] = {
            "data": str(view.data_yaml),
            "epochs": settings.epochs,
            "imgsz": settings.imgsz,
            "batch": settings.batch,
            "device": device,
            "project": str(workdir),
            "name": "train",
            "exist_ok": True,
            "plots": False,
            "seed": settings.seed,
            "deterministic": False,
            "workers": settings.workers,
            "verbose": settings.verbose,
            "amp": device != "cpu",
            **recipe,
            **settings.extra,
        }
        self.train_args = {k: v for k, v in args.items() if k not in ("data", "project", "name", "exist_ok")}
        if device == "cpu":
            self.train_args["threads"] = cpu_threads(settings.threads)
        return args

    def _callbacks(
        self, stop: EarlyStop, settings: TrainSettings, device: str, progress: ProgressCallback | None
    ) -> Callbacks:
        """Add this run's callbacks to the model (the stopping rule, progress, CPU threads); returns them."""
        import torch

        callbacks = _stop_callbacks(stop)
        if progress:  # capped: the final validation's call comes at epoch + 1
            callbacks.append(("on_fit_epoch_end", lambda t: progress(min(t.epoch + 1, t.epochs), t.epochs)))
        if device == "cpu":
            # after Ultralytics' select_device has set its own thread count, before the first batch
            threads = cpu_threads(settings.threads)
            callbacks.append(("on_pretrain_routine_start", lambda trainer: torch.set_num_threads(threads)))
        for event, callback in callbacks:
            self.model.add_callback(event, callback)
        return callbacks

    def _trained(self, view: TrainingView, settings: TrainSettings, stop: EarlyStop) -> TrainResult:
        """The best epoch's weights loaded as this detector's model, and what the run recorded."""
        trainer = self.model.trainer
        best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
        applied = self._applied(trainer, view, settings)
        self.model = type(self.model)(str(best))
        self._quiet()
        return TrainResult(
            weights=best,
            metrics={k: float(v) for k, v in (trainer.metrics or {}).items()},
            train_seconds=time.perf_counter() - stop.started,
            epochs_run=int(trainer.epoch) + 1,
            stopping=stop.record(),
            applied=applied,
        )

    def _applied(self, trainer: Any, view: TrainingView, settings: TrainSettings) -> dict[str, Any]:
        """The arguments the trainer ran with (`optimizer=auto` resolved), as the benchmark records them."""
        a = trainer.args
        group = trainer.optimizer.param_groups[0] if getattr(trainer, "optimizer", None) else {}
        return {
            "split": view.split_record(),
            "imgsz": a.imgsz,
            "batch": a.batch,
            "epochs": settings.epochs,  # the ceiling (the trainer's own `epochs` ends as the rule's horizon)
            "patience": a.patience,
            "budget_minutes": settings.budget_minutes,
            "seed": a.seed,
            "device": str(a.device),
            "augmentation": {k: getattr(a, k) for k in AUGMENTATION_ARGS},
            "pretrained": None if self.pretrained is None else self.pretrained.to_dict(),
            "recipe": settings.recipe.value,
            "optimizer": a.optimizer,
            "lr": a.lr0,
            "momentum": group.get("momentum", (group.get("betas") or (a.momentum,))[0]),
            "weight_decay": a.weight_decay,
            "nbs": a.nbs,
            "warmup_epochs": a.warmup_epochs,
            "schedule": f"{'cosine' if a.cos_lr else 'linear'} from lr0 to lr0 x {a.lrf} over the run (Ultralytics)",
        }

    def validate(
        self, view: TrainingView, split: str, *, imgsz: int, batch: int, workdir: Path, device: str | None = None
    ) -> dict[str, Any]:
        """Ultralytics' own mAP on a split of the view (per class over the classes present)."""
        if not view.images.get(split):
            return {}
        result = self.model.val(
            data=str(view.data_yaml),
            split=split,
            imgsz=imgsz,
            batch=batch,
            device=device or default_device(),
            project=str(workdir),
            name=f"val-{split}",
            exist_ok=True,
            plots=False,
            verbose=False,
        )
        per_class = {}
        for i, cls_index in enumerate(result.box.ap_class_index):
            p, r, ap50, ap = result.box.class_result(i)
            per_class[self.classes[int(cls_index)]] = {
                "precision": float(p),
                "recall": float(r),
                "map50": float(ap50),
                "map50_95": float(ap),
            }
        return {
            "map50": float(result.box.map50),
            "map50_95": float(result.box.map),
            "precision": float(result.box.mp),
            "recall": float(result.box.mr),
            "per_class": per_class,
            "images": len(view.images[split]),
        }

    def predict_arrays(
        self,
        images: Sequence[np.ndarray],
        *,
        conf: float = PREDICT_FLOOR,
        imgsz: int = 640,
        device: str | None = None,
        half: bool | None = None,
    ) -> list[list[Box]]:
        if not images:
            return []
        device = device or default_device()
        use_half = (device != "cpu") if half is None else half
        bgr = [np.ascontiguousarray(a[..., ::-1]) for a in images]  # Ultralytics takes arrays as BGR
        import torch

        threads = torch.get_num_threads()
        try:
            results = self.model.predict(
                bgr, conf=conf, imgsz=imgsz, device=device, half=use_half, verbose=False, batch=len(bgr)
            )
        finally:
            torch.set_num_threads(threads)  # Ultralytics' select_device sets the process's count to cpu_count - 1
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


def build(model: str, classes: Sequence[str], *, verbose: bool = False, **options: Any) -> UltralyticsDetector:
    """A new Ultralytics detector from a model name ("yolo11n": the YAML Ultralytics ships; "yolov4": our
    yolov4-csp.yaml), a YAML, or weights to start from. options: pretrained."""
    path = Path(model).expanduser()
    spec = model if (model.endswith((".yaml", ".yml", ".pt")) or path.exists()) else f"{model}.yaml"
    if model == "yolov4":
        spec = "yolov4-csp.yaml"
    return UltralyticsDetector(classes, spec, verbose=verbose, **options)


register_family(
    DetectorFamily(
        name=UltralyticsDetector.family,
        models=("yolov5nu", "yolov8n", "yolo11n", "rtdetr-l", "yolov4"),
        build=build,
        load=UltralyticsDetector.load,
        recognises=is_ultralytics_checkpoint,
        checkpoint="an Ultralytics checkpoint",
        # any other name is a YAML Ultralytics ships (yolov8s, yolo11n.yaml), one we ship, or a local file;
        # `_resolve_spec` refuses the rest with one clear error
        builds=lambda spec: True,
        order=10,
    )
)
