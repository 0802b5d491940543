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
from training.detectors.base import Detector, ProgressCallback, TrainingView, TrainResult, TrainSettings
from training.detectors.pretrained import PretrainedWeights, checkpoint_file, record
from training.detectors.registry import DetectorFamily, register_family

FILE_FORMAT = "annotator-torchvision/1"


@dataclass(frozen=True)
class _Arch:
    builder: str  # torchvision.models.detection function
    fixed_size: int | None  # SSDs resize every photo to a fixed square; Faster R-CNN follows imgsz
    description: str


ARCHS: dict[str, _Arch] = {
    "ssdlite": _Arch("ssdlite320_mobilenet_v3_large", 320, "SSDlite 320, MobileNetV3-Large"),
    "ssd300": _Arch("ssd300_vgg16", 300, "SSD300, VGG16"),
    "fasterrcnn_mobilenet": _Arch("fasterrcnn_mobilenet_v3_large_fpn", None, "Faster R-CNN, MobileNetV3-Large FPN"),
    "fasterrcnn_resnet50": _Arch("fasterrcnn_resnet50_fpn", None, "Faster R-CNN, ResNet-50 FPN"),
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


def _warmup_cosine(optimizer: torch.optim.Optimizer, *, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over a tenth of the steps (at most 100), then cosine down to 5 % of the learning rate."""
    warmup = min(100, max(1, total // 10))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warmup
            if s < warmup
            else 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
        ),
    )


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
        """AdamW (or SGD) with a linear warm-up and a cosine decay; the last epoch's weights, validated on val."""
        items = self._training_items(view)
        workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        torch.manual_seed(settings.seed)
        random.seed(settings.seed)
        self.imgsz = int(settings.imgsz)
        self._configure(self.imgsz)
        self._to(_device(settings.device))
        loader = self._loader(items, settings)
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = _optimizer(params, settings)
        scheduler = _warmup_cosine(optimizer, total=max(1, settings.epochs * len(loader)))
        history: list[float] = []
        skipped = 0
        for epoch in range(settings.epochs):
            loss, skipped_now = self._train_epoch(loader, optimizer, scheduler, params)
            history.append(loss)
            skipped += skipped_now
            if settings.verbose or self.verbose:
                print(f"epoch {epoch + 1}/{settings.epochs} loss {history[-1]:.4f}")
            if progress:
                progress(epoch + 1, settings.epochs)
        weights = self.save(workdir / "weights.pt")
        metrics: dict[str, Any] = {
            "loss": history[-1] if history else None,
            "loss_history": history,
            "skipped_batches": skipped,
        }
        val = self.validate(view, "val", imgsz=self.imgsz, batch=max(1, settings.batch), workdir=workdir)
        if val:
            metrics.update(val_map50=val["map50"], val_map50_95=val["map50_95"])
        return TrainResult(
            weights=weights, metrics=metrics, train_seconds=time.perf_counter() - started, epochs_run=settings.epochs
        )

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
