"""torchvision detectors (SSD300, SSDlite, Faster R-CNN) behind the Detector interface.

Random initialisation by default, or a local model/backbone weights file the user names:
nothing is downloaded. Trains on the YOLO-format training view with a plain loop and validates
with pycocotools' mAP.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from annotator.boxes import boxes_to_photo, clip_box
from annotator.errors import TrainingError
from annotator.formats.coco import coco_ground_truth, coco_results
from annotator.formats.yolo import label_path_for, read_yolo_labels
from annotator.images import decode_displayed
from annotator.types import Box
from training.constants import EVAL_CONF, PREDICT_FLOOR
from training.detectors.base import Detector, ProgressCallback, Recipe, TrainingView, TrainResult, TrainSettings
from training.detectors.pretrained import PretrainedWeights, checkpoint_file, record
from training.detectors.registry import DetectorFamily, register_family
from training.detectors.stopping import EarlyStop

FILE_FORMAT = "annotator-torchvision/1"


@dataclass(frozen=True)
class ReferenceRecipe:
    """torchvision's own recipe for one architecture (vision/references/detection: its README's command and
    train.py's defaults), as `Recipe.REFERENCE` applies it: SGD with momentum 0.9 at `lr` scaled linearly from the
    reference's total batch to ours (train.py: "0.02/8*$NGPU"), a linear warm-up through the first epoch (engine.py:
    from 1/1000 over min(1000, iterations - 1)), then a per-epoch decay spread over the run's horizon."""

    lr: float  # at the reference's total batch
    batch: int  # the reference's total batch: 8 GPUs x images per GPU
    weight_decay: float
    milestones: tuple[float, ...] | None  # MultiStepLR (x0.1) at these fractions of the run; None: cosine annealing
    command: str  # the README's flags they come from


REFERENCE_MOMENTUM = 0.9
REFERENCE_WARMUP_FACTOR, REFERENCE_WARMUP_ITERATIONS = 0.001, 1000  # engine.train_one_epoch's warm-up, epoch 0
_RCNN_REFERENCE = ReferenceRecipe(
    0.02, 16, 1e-4, (16 / 26, 22 / 26), "--epochs 26 --lr-steps 16 22 (train.py: --lr 0.02 --wd 1e-4, 8 GPUs x 2)"
)


@dataclass(frozen=True)
class _Arch:
    builder: str  # torchvision.models.detection function
    fixed_size: int | None  # SSDs resize every photo to a fixed square; Faster R-CNN follows imgsz
    description: str
    reference: ReferenceRecipe


ARCHS: dict[str, _Arch] = {
    "ssdlite": _Arch(
        "ssdlite320_mobilenet_v3_large",
        320,
        "SSDlite 320, MobileNetV3-Large",
        ReferenceRecipe(
            0.15, 8 * 24, 4e-5, None, "--lr-scheduler cosineannealinglr --lr 0.15 --batch-size 24 --wd 4e-5"
        ),
    ),
    "ssd300": _Arch(
        "ssd300_vgg16",
        300,
        "SSD300, VGG16",
        ReferenceRecipe(
            0.002, 8 * 4, 5e-4, (80 / 120, 110 / 120), "--epochs 120 --lr-steps 80 110 --lr 0.002 -b 4 --wd 5e-4"
        ),
    ),
    "fasterrcnn_mobilenet": _Arch(
        "fasterrcnn_mobilenet_v3_large_fpn", None, "Faster R-CNN, MobileNetV3-Large FPN", _RCNN_REFERENCE
    ),
    "fasterrcnn_resnet50": _Arch("fasterrcnn_resnet50_fpn", None, "Faster R-CNN, ResNet-50 FPN", _RCNN_REFERENCE),
}


def _device(name: str | None) -> torch.device:
    if name in (None, ""):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    first = str(name).split(",")[0]
    return torch.device(f"cuda:{first}" if first.isdigit() else first)


def _read_weights(path: Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise TrainingError(f"{path}: weights file not found; name a local file (nothing is downloaded)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickles of arbitrary objects, truncated files, not a torch file
        raise TrainingError(
            f"{path}: cannot read it as torch weights ({exc}); name a state_dict or a file written by this tool"
        ) from exc


def is_torchvision_checkpoint(path: Path) -> bool:
    """True when `path` holds a model written by `TorchvisionDetector.save` (read as plain tensors:
    nothing in the file is executed, and the tensors are mapped, not copied)."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a torch file, a legacy (non-zip) file, or a pickle of other objects
        return False
    return isinstance(payload, dict) and payload.get("format") == FILE_FORMAT


def _state_dict_of(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model"):
        if isinstance(payload.get(key), dict):
            return payload[key]
    return payload


def _load_by_name(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> int:
    """Load tensors whose name and shape match (a head for another class count is skipped)."""
    own = module.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    matched = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not matched:
        raise TrainingError(f"{source}: no tensor matches this architecture; name weights of the same model")
    module.load_state_dict(matched, strict=False)
    return len(matched)


def _load_in_order(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> int:
    """Load a classification backbone (e.g. torchvision's ImageNet file) into a detection backbone.

    Detection backbones rename and regroup layers, so tensors are paired in order, by shape:
    each source tensor (classifier excluded) goes to the next target tensor of the same shape.
    """
    src = [
        (k, v)
        for k, v in state.items()
        if not k.startswith(("fc.", "classifier.", "head.")) and not k.endswith("num_batches_tracked")
    ]
    own = [(k, v) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")]
    loaded: dict[str, torch.Tensor] = {}
    j = 0
    for key, target in own:
        if j < len(src) and tuple(src[j][1].shape) == tuple(target.shape):
            loaded[key] = src[j][1]
            j += 1
    if not src or j < 0.9 * len(src):
        raise TrainingError(
            f"{source}: only {j} of {len(src)} backbone tensors fit this architecture's backbone; "
            "name the ImageNet weights of the matching classifier (e.g. resnet50 for "
            "fasterrcnn_resnet50)"
        )
    module.load_state_dict(loaded, strict=False)
    return j


def _transfer_backbone(model: torch.nn.Module, path: Path) -> PretrainedWeights:
    """Load a local classifier's weights into the detector's backbone (in order, by shape) and record it."""
    path = checkpoint_file(path)
    state = _state_dict_of(_read_weights(path))
    target = getattr(model.backbone, "body", model.backbone)
    return record(path, _load_in_order(target, state, path), len(state), target)


def build_model(arch: str, num_classes: int, *, full_tail: bool = False) -> torch.nn.Module:
    """A randomly initialised torchvision detector; num_classes includes background (index 0).

    full_tail: keep MobileNetV3's last blocks at their ImageNet widths. SSDlite halves them when it starts
    without a torchvision download, so an ImageNet backbone file would not fit; set for a pretrained start."""
    if arch not in ARCHS:
        raise TrainingError(f"unknown torchvision architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    import torchvision.models.detection as detection

    builder: Callable[..., torch.nn.Module] = getattr(detection, ARCHS[arch].builder)
    if not (full_tail and arch == "ssdlite"):
        return builder(weights=None, weights_backbone=None, num_classes=num_classes)
    import torchvision.models.detection.ssdlite as ssdlite

    original = ssdlite.mobilenet_v3_large  # the builder derives reduced_tail from "no backbone download"
    ssdlite.mobilenet_v3_large = lambda **kwargs: original(**{**kwargs, "reduced_tail": False})
    try:
        return builder(weights=None, weights_backbone=None, num_classes=num_classes)
    finally:
        ssdlite.mobilenet_v3_large = original


# ---- data -----------------------------------------------------------------------------------


def _resize_long_side(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float, float]:
    """Resize (H, W, 3) so the long side is `side`; returns (pixels, sx, sy): original pixels per resized pixel."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if abs(scale - 1.0) < 1e-6:
        return rgb, 1.0, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return out, w / size[0], h / size[1]


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1).float().div_(255.0)  # (3, H, W)


class _ViewDataset(torch.utils.data.Dataset):
    """(image (3, H, W) in [0, 1], target {boxes (N, 4) xyxy pixels, labels (N,) 1-based}) per photo."""

    def __init__(self, items: list[tuple[Path, str]], classes: Sequence[str], side: int, augment: bool) -> None:
        self.items = items
        self.classes = tuple(classes)
        self.side = side
        self.augment = augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        link, rel = self.items[i]
        try:
            rgb, _, _ = decode_displayed(link, max_side=self.side)  # EXIF applied: the labels' frame
        except OSError as exc:
            raise TrainingError(f"{rel}: cannot decode the photo for training ({exc})") from exc
        rgb, _, _ = _resize_long_side(rgb, self.side)
        h, w = rgb.shape[:2]
        found = [clip_box(b, w, h) for b in read_yolo_labels(label_path_for(link), self.classes, w, h)]
        found = [b for b in found if b.width >= 1 and b.height >= 1]  # torchvision refuses empty boxes
        boxes = np.array([[b.x1, b.y1, b.x2, b.y2] for b in found], dtype=np.float32).reshape(-1, 4)  # (N, 4)
        labels = np.array([self.classes.index(b.label) + 1 for b in found], dtype=np.int64)  # (N,) 1-based
        if self.augment and random.random() < 0.5:  # faces are left-right symmetric enough
            rgb = rgb[:, ::-1]
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        return _to_tensor(rgb), {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)}


def _collate(batch):
    return tuple(zip(*batch, strict=True))


def _optimizer(params: list[torch.nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW by default; `extra` may name "sgd", the learning rate ("lr") and AdamW's "weight_decay"."""
    lr = float(settings.extra.get("lr", 1e-3))
    if settings.extra.get("optimizer", "adamw").lower() == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    return torch.optim.AdamW(params, lr=lr, weight_decay=float(settings.extra.get("weight_decay", 1e-4)))


def warmup_cosine_factor(step: int, total: int) -> float:
    """The tool's schedule: linear warm-up over a tenth of the steps (at most 100), then cosine down to 5 % of the
    learning rate at `total` steps."""
    warmup = min(100, max(1, total // 10))
    if step < warmup:
        return (step + 1) / warmup
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def reference_factor(step: int, steps_per_epoch: int, horizon: int, recipe: ReferenceRecipe) -> float:
    """torchvision's reference schedule at optimizer step `step` of a run of `horizon` epochs: the first epoch's
    linear warm-up, times MultiStepLR's 0.1 per milestone passed or CosineAnnealingLR's factor (both per epoch)."""
    epoch = step // max(1, steps_per_epoch)
    warm = min(REFERENCE_WARMUP_ITERATIONS, steps_per_epoch - 1)
    start = REFERENCE_WARMUP_FACTOR
    warmup = start + (1 - start) * step / warm if epoch == 0 and step < warm else 1.0
    if recipe.milestones is None:
        return warmup * 0.5 * (1 + math.cos(math.pi * epoch / max(1, horizon)))
    passed = sum(epoch >= max(1, round(m * horizon)) for m in recipe.milestones)
    return warmup * 0.1**passed


Schedule = tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, dict[str, Any]]


def _recipe(
    params: list[torch.nn.Parameter], settings: TrainSettings, arch: str, steps_per_epoch: int, stop: EarlyStop
) -> Schedule:
    """The optimizer and per-step schedule of `settings.recipe`, its length read from the rule's horizon (fitted to
    the budget after the first epoch), and what they are, for the run's record."""
    if settings.recipe is Recipe.REFERENCE:
        return _reference_recipe(params, settings.batch, ARCHS[arch].reference, steps_per_epoch, stop)
    optimizer = _optimizer(params, settings)
    factor = lambda s: warmup_cosine_factor(s, max(1, stop.horizon * steps_per_epoch))  # noqa: E731
    group = optimizer.param_groups[0]
    described = {"optimizer": type(optimizer).__name__, "lr": group["lr"], "weight_decay": group["weight_decay"]}
    described["schedule"] = "linear warm-up (a tenth of the steps, at most 100), cosine to 5 % over the run"
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor), {"recipe": Recipe.TOOL.value, **described}


def _reference_recipe(
    params: list[torch.nn.Parameter], batch: int, ref: ReferenceRecipe, steps_per_epoch: int, stop: EarlyStop
) -> Schedule:
    """torchvision's reference SGD and schedule for one architecture, its learning rate scaled to our batch."""
    lr = ref.lr * max(1, batch) / ref.batch
    optimizer = torch.optim.SGD(params, lr=lr, momentum=REFERENCE_MOMENTUM, weight_decay=ref.weight_decay)
    factor = lambda s: reference_factor(s, steps_per_epoch, stop.horizon, ref)  # noqa: E731
    decay = (
        "cosine annealing over the run"
        if ref.milestones is None
        else "x0.1 at " + " and ".join(f"{m:.0%}" for m in ref.milestones) + " of the run"
    )
    described = {"recipe": Recipe.REFERENCE.value, "optimizer": "SGD", "lr": lr, "momentum": REFERENCE_MOMENTUM}
    described["weight_decay"] = ref.weight_decay
    described["schedule"] = f"linear warm-up through epoch 1 from {REFERENCE_WARMUP_FACTOR}, then {decay}"
    described["source"] = f"torchvision references/detection {ref.command}; lr x {max(1, batch)}/{ref.batch}"
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor), described


# ---- the detector ---------------------------------------------------------------------------


class TorchvisionDetector(Detector):
    """SSD / Faster R-CNN from torchvision.

    arch: one of ARCHS. weights: a local file of a whole model (one written by `save`, or a
    torchvision detection state_dict: tensors are matched by name and shape, so a head for
    another class count is skipped). pretrained: a local ImageNet classifier state_dict for the
    backbone (e.g. resnet50 for fasterrcnn_resnet50), recorded in `self.pretrained`. SSDs take
    their fixed square input (300/320 px); Faster R-CNN resizes the long side to `imgsz`.
    """

    family = "torchvision"

    def __init__(
        self,
        classes: Sequence[str],
        arch: str = "ssdlite",
        weights: str | Path | None = None,
        pretrained: str | Path | None = None,
        *,
        imgsz: int = 640,
        full_tail: bool = False,
        verbose: bool = False,
    ) -> None:
        super().__init__(classes)
        self.arch = arch
        self.imgsz = int(imgsz)
        self.verbose = verbose
        self.full_tail = pretrained is not None or full_tail
        self.model = build_model(arch, len(self.classes) + 1, full_tail=self.full_tail)
        if pretrained is not None:
            self.pretrained = _transfer_backbone(self.model, Path(pretrained))
        if weights is not None:
            payload = _read_weights(Path(weights))
            if payload.get("format") == FILE_FORMAT and payload.get("arch") != arch:
                raise TrainingError(f"{weights}: holds a {payload.get('arch')} model, not {arch}")
            _load_by_name(self.model, _state_dict_of(payload), Path(weights))
        self.device = torch.device("cpu")

    # -- sizes and thresholds
    def _input_side(self, imgsz: int) -> int:
        fixed = ARCHS[self.arch].fixed_size
        return fixed if fixed is not None else int(imgsz)

    def _configure(self, imgsz: int, conf: float | None = None) -> None:
        transform = self.model.transform
        if ARCHS[self.arch].fixed_size is None:
            transform.min_size = (int(imgsz),)
            transform.max_size = int(imgsz)
        if conf is not None:
            if hasattr(self.model, "roi_heads"):
                self.model.roi_heads.score_thresh = float(conf)
            else:
                self.model.score_thresh = float(conf)

    def _to(self, device: torch.device) -> None:
        self.model.to(device)
        self.device = device

    # -- train
    def train(
        self, view: TrainingView, settings: TrainSettings, workdir: Path, progress: ProgressCallback | None = None
    ) -> TrainResult:
        """Train with `settings.recipe` (the tool's AdamW with warm-up and cosine decay, or torchvision's reference
        SGD) epoch by epoch until the stopping rule ends the run (training.detectors.stopping). With patience or a
        budget every epoch is validated on val and the best epoch's weights are kept; without, the last epoch's are,
        validated once at the end."""
        items = self._training_items(view)
        workdir.mkdir(parents=True, exist_ok=True)
        stop = EarlyStop(ceiling=settings.epochs, patience=settings.patience, budget_minutes=settings.budget_minutes)
        self._prepare(settings)
        loader = self._loader(items, settings)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer, scheduler, recipe = _recipe(params, settings, self.arch, len(loader), stop)
        watched = settings.patience is not None or settings.budget_minutes is not None
        metrics = self._fit(view, settings, (loader, optimizer, scheduler, params), stop, watched, progress)
        weights = self.save(workdir / "weights.pt")
        if not watched:
            val = self.validate(view, "val", imgsz=self.imgsz, batch=max(1, settings.batch), workdir=workdir)
            if val:
                metrics.update(val_map50=val["map50"], val_map50_95=val["map50_95"])
        stopping = stop.record()
        return TrainResult(
            weights=weights,
            metrics=metrics,
            train_seconds=time.perf_counter() - stop.started,
            epochs_run=stopping.epochs_run,
            stopping=stopping,
            applied=self._applied(view, settings, recipe),
        )

    def _prepare(self, settings: TrainSettings) -> None:
        """Seeds, the input size and the device for a training run."""
        torch.manual_seed(settings.seed)
        random.seed(settings.seed)
        self.imgsz = int(settings.imgsz)
        self._configure(self.imgsz)
        self._to(_device(settings.device))

    def _fit(
        self,
        view: TrainingView,
        settings: TrainSettings,
        step: tuple[Any, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, list[torch.nn.Parameter]],
        stop: EarlyStop,
        watched: bool,
        progress: ProgressCallback | None,
    ) -> dict[str, Any]:
        """Epochs until the rule stops the run; `watched`: each validated on val, the best epoch's weights kept."""
        loader, optimizer, scheduler, params = step
        history: list[float] = []
        skipped = 0
        best_state: dict[str, torch.Tensor] | None = None
        best_val: dict[str, Any] = {}
        while settings.epochs > 0 and stop.reason is None:
            loss, skipped_now = self._train_epoch(loader, optimizer, scheduler, params)
            history.append(loss)
            skipped += skipped_now
            val = self.validate(view, "val", imgsz=self.imgsz, batch=max(1, settings.batch)) if watched else {}
            stop.epoch_done(val.get("map50"), val.get("map50_95"))
            if watched and stop.improved:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
                best_val = val
            if settings.verbose or self.verbose:
                print(f"epoch {stop.epochs}/{stop.horizon} loss {loss:.4f} val mAP50 {val.get('map50', 'n/a')}")
            if progress:
                progress(stop.epochs, stop.horizon)
        if best_state is not None:
            self.model.load_state_dict(best_state)
        metrics: dict[str, Any] = {"loss": history[-1] if history else None, "loss_history": history}
        metrics["skipped_batches"] = skipped
        if best_val:
            metrics.update(val_map50=best_val["map50"], val_map50_95=best_val["map50_95"], best_epoch=stop.best_epoch)
        return metrics

    def _applied(self, view: TrainingView, settings: TrainSettings, recipe: dict[str, Any]) -> dict[str, Any]:
        """The arguments this run trained with, as the benchmark records them beside every other family's."""
        return {
            "split": view.split_record(),
            "imgsz": settings.imgsz,
            "input_side": self._input_side(settings.imgsz),  # SSDs take their fixed square whatever imgsz says
            "batch": settings.batch,
            "epochs": settings.epochs,
            "patience": settings.patience,
            "budget_minutes": settings.budget_minutes,
            "seed": settings.seed,
            "device": str(self.device),
            "augmentation": {"fliplr": 0.5},  # `_ViewDataset`: a mirrored face is a plausible face
            "pretrained": None if self.pretrained is None else self.pretrained.to_dict(),
            **recipe,
        }

    def _training_items(self, view: TrainingView) -> list[tuple[Path, str]]:
        """The view's training photos, refused when the view is for other classes or has none."""
        if tuple(view.classes) != self.classes:
            raise TrainingError(f"the training view's classes {view.classes} differ from the model's {self.classes}")
        items = view.images.get("train", [])
        if not items:
            raise TrainingError(f"{view.root}: no training photos; label some photos and make the splits first")
        return items

    def _loader(self, items: list[tuple[Path, str]], settings: TrainSettings) -> torch.utils.data.DataLoader:
        """Shuffled, flip-augmented batches at the model's input size (the last short batch dropped, but never the
        only one)."""
        return torch.utils.data.DataLoader(
            _ViewDataset(items, self.classes, self._input_side(self.imgsz), augment=True),
            batch_size=max(1, settings.batch),
            shuffle=True,
            collate_fn=_collate,
            num_workers=settings.workers,
            generator=torch.Generator().manual_seed(settings.seed),
            drop_last=len(items) > settings.batch,
        )

    def _train_epoch(
        self,
        loader: torch.utils.data.DataLoader,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LambdaLR,
        params: list[torch.nn.Parameter],
    ) -> tuple[float, int]:
        """One pass over the loader: (mean loss of the batches trained on, batches skipped for a non-finite loss)."""
        self.model.train()
        losses = []
        skipped = 0
        for images, targets in loader:
            images = [im.to(self.device) for im in images]
            targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
            loss = sum(self.model(images, targets).values())
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):  # a diverging batch from scratch: skip it, keep training
                skipped += 1
                continue
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        return (float(np.mean(losses)) if losses else float("nan")), skipped

    def validate(
        self,
        view: TrainingView,
        split: str,
        *,
        imgsz: int,
        batch: int = 8,
        workdir: Path | None = None,
        device: str | None = None,
    ) -> dict[str, Any]:
        """COCO mAP (pycocotools) on a split of the view, photos at the model's input size; writes nothing."""
        items = view.images.get(split, [])
        if not items:
            return {}
        from training.metrics import coco_evaluate

        dataset = _ViewDataset(items, self.classes, self._input_side(imgsz), augment=False)
        truth: list[list[Box]] = []
        pred: list[list[Box]] = []
        step = max(1, batch)
        for start in range(0, len(dataset), step):
            chunk = [dataset[i] for i in range(start, min(start + step, len(dataset)))]
            arrays = [(image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for image, _ in chunk]
            pred.extend(self.predict_arrays(arrays, conf=EVAL_CONF, imgsz=imgsz, device=device, batch=step))
            for _, target in chunk:  # boxes (N, 4) in the input's pixels, labels (N,) 1-based
                truth.append(
                    [
                        Box(self.classes[int(c) - 1], float(x1), float(y1), float(x2), float(y2))
                        for (x1, y1, x2, y2), c in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True)
                    ]
                )
        quality = coco_evaluate(
            coco_ground_truth([rel for _, rel in items], truth, self.classes), coco_results(pred, self.classes)
        )
        per_class = {
            c: {"map50": v["ap50"], "map50_95": v["ap50_95"]}
            for c, v in quality.per_class.items()
            if v["ap50"] is not None
        }
        return {"map50": quality.map50, "map50_95": quality.map50_95, "per_class": per_class, "images": len(items)}

    # -- predict
    @torch.inference_mode()
    def predict_arrays(
        self,
        images: Sequence[np.ndarray],
        *,
        conf: float = PREDICT_FLOOR,
        imgsz: int = 640,
        device: str | None = None,
        batch: int = 8,
    ) -> list[list[Box]]:
        if not images:
            return []
        if device is not None:
            self.device = torch.device("cpu" if device == "cpu" else f"cuda:{device}" if device.isdigit() else device)
            self.model.to(self.device)
        self._configure(imgsz, conf)
        self.model.eval()
        side = self._input_side(imgsz)
        out: list[list[Box]] = []
        for start in range(0, len(images), batch):
            arrays = [np.asarray(a, dtype=np.uint8) for a in images[start : start + batch]]
            chunk = [_resize_long_side(a, side) for a in arrays]
            results = self.model([_to_tensor(rgb).to(self.device) for rgb, _, _ in chunk])
            for array, (_, sx, sy), res in zip(arrays, chunk, results, strict=True):
                xyxy = res["boxes"].cpu().numpy()  # (N, 4) in the resized input's pixels
                scores = res["scores"].cpu().numpy()  # (N,)
                labels = res["labels"].cpu().numpy()  # (N,) 1-based, 0 = background
                found = [
                    Box(self.classes[int(c) - 1], float(x1), float(y1), float(x2), float(y2), score=float(s))
                    for (x1, y1, x2, y2), s, c in zip(xyxy, scores, labels, strict=True)
                    if 1 <= int(c) <= len(self.classes) and s >= conf
                ]
                out.append(boxes_to_photo(found, sx, sy, array.shape[1], array.shape[0]))
        return out

    # -- persistence
    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(
            {
                "format": FILE_FORMAT,
                "arch": self.arch,
                "classes": list(self.classes),
                "imgsz": self.imgsz,
                "full_tail": self.full_tail,
                "state_dict": state,
            },
            tmp,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path, classes: Sequence[str] | None = None, *, verbose: bool = False) -> TorchvisionDetector:
        payload = _read_weights(Path(path))
        if payload.get("format") != FILE_FORMAT:
            raise TrainingError(
                f"{path}: not a file written by this tool's torchvision detector; pass it as "
                "weights= with the architecture instead"
            )
        saved = tuple(payload["classes"])
        if classes is not None and tuple(classes) != saved:
            raise TrainingError(
                f"{path}: trained for classes {saved}, not {tuple(classes)}; use the workspace "
                "the model was trained for"
            )
        det = cls(
            saved,
            payload["arch"],
            imgsz=int(payload.get("imgsz", 640)),
            full_tail=bool(payload.get("full_tail", False)),
            verbose=verbose,
        )
        det.model.load_state_dict(payload["state_dict"])
        return det

    @property
    def parameter_count(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))


def build(model: str, classes: Sequence[str], *, verbose: bool = False, **options: Any) -> TorchvisionDetector:
    """A new torchvision detector; `model` is one of ARCHS. options: weights, pretrained, imgsz, full_tail."""
    return TorchvisionDetector(classes, model, verbose=verbose, **options)


register_family(
    DetectorFamily(
        name=TorchvisionDetector.family,
        models=tuple(ARCHS),
        build=build,
        load=TorchvisionDetector.load,
        recognises=is_torchvision_checkpoint,
        checkpoint="a torchvision model saved by this tool",
        order=20,  # after Ultralytics in lists and help
    )
)
