"""Self-supervised pretraining of a YOLO detector's backbone on the workspace's own unlabelled photos.

What for: a detector built from a YAML starts from random weights; a few epochs of SimCLR on the photos the
workspace already holds (labelled or not) give its backbone features of this domain (skin, pigment, lighting)
before the first labelled round. The result is a file of plain tensors named as in Ultralytics' DetectionModel
(`model.0.conv.weight`, BN running statistics included), which `UltralyticsDetector(..., pretrained=PATH)`
transfers by name and shape (training.detectors.pretrained).

Why SimCLR (lightly's MIT-licensed modules: SimCLRTransform, SimCLRProjectionHead, NTXentLoss): it needs one
network and a batch of crops, no momentum teacher (BYOL, DINO) nor multi-crop, so a CPU run of a few epochs
over a few hundred photos is affordable; its one hyperparameter beyond the optimizer is the temperature.
LightlyTrain (AGPL-3.0 or a commercial licence, per its README; compatible with this AGPL project) wraps
Ultralytics models too, but pulls many more dependencies and pretrains its own way; the backbone-only path
here is a few dozen lines. lightly 1.6.0 makes no network call (no version check; checked with sockets off).

Colour jitter is milder than ImageNet's (brightness, contrast 0.4; saturation 0.2; hue 0.02; no grayscale):
the detector's cue is pigment on skin (a red papule, a brown macule), and views that differ in hue or lose
colour would teach the backbone to ignore exactly that; lighting still varies between photos, so it is kept.
Crops are fed in [0, 1] without ImageNet normalisation: that is what the Ultralytics detector feeds its first
layer, so the pretrained BN statistics stay valid after the transfer.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms import SimCLRTransform

from annotator.errors import TrainingError
from annotator.fsutil import atomic_write_bytes
from training.detectors.ultralytics import _resolve_spec, cpu_threads
from training.offline import prepare_ultralytics

PROJECTION_DIM = 128  # SimCLR's projection output (the paper's and lightly's examples)
JPEG_DRAFT_FACTOR = 4  # decode JPEGs at >= 4x the crop side: the smallest crop (8% of the area) is still >= 1x


@dataclass(frozen=True)
class SelfSupervisedSettings:
    """How the backbone is pretrained.

    lr: Adam at 1e-3. A CPU run is tens of optimizer steps (200 photos, batch 32, 5 epochs: 30), and Adam
    moves every weight from the first step; SimCLR's SGD/LARS recipe (lr 0.3 x batch/256) is tuned for
    hundreds of epochs at batch 4096. temperature: 0.5, lightly's default and SimCLR's setting for small
    batches (CIFAR-10); the paper's 0.1 suits thousands of negatives, a batch of 32 has 62.
    """

    imgsz: int = 160  # crop side the backbone sees (px)
    epochs: int = 5
    batch: int = 32
    lr: float = 1e-3
    temperature: float = 0.5
    seed: int = 0
    threads: int | None = None  # torch CPU threads; None = every core this process may use (cpu_threads)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.imgsz < 32 or self.epochs < 1 or self.batch < 2:
            raise TrainingError("imgsz must be at least 32, epochs at least 1 and batch at least 2")
        if not (self.lr > 0 and self.temperature > 0):
            raise TrainingError("lr and temperature must be positive")


@dataclass(frozen=True)
class BackboneResult:
    """What `pretrain_backbone` wrote and how the run went."""

    path: Path  # the checkpoint written
    tensors: int  # tensors in it (the backbone's, BN running statistics included)
    layers: int  # backbone layers pretrained (11 for yolo11n: indices 0..10)
    photos: int
    epochs: int
    losses: tuple[float, ...]  # mean NT-Xent loss per epoch
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path), "losses": list(self.losses)}


def backbone_layers(model_yaml: str) -> int:
    """Number of layers in the YAML's `backbone` section (an Ultralytics YAML name, ours, or a local file)."""
    prepare_ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    return len(yaml_model_load(_resolve_spec(model_yaml))["backbone"])


class _Backbone(torch.nn.Module):
    """The detector's backbone layers run in order, the last output average-pooled: (B, 3, S, S) -> (B, C)."""

    def __init__(self, layers: torch.nn.Sequential) -> None:
        super().__init__()
        self.layers = layers  # keeps the DetectionModel's indices as names ("0", "1", ...)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(self.layers(x), 1), 1)


class _Photos(torch.utils.data.Dataset):
    """The photos as RGB PIL images (EXIF orientation applied), each turned into SimCLR's two views."""

    def __init__(self, photos: Sequence[Path], transform: Callable[[Any], Any], imgsz: int) -> None:
        self.photos, self.transform, self.imgsz = list(photos), transform, imgsz

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> Any:
        return self.transform(_read_rgb(self.photos[index], self.imgsz * JPEG_DRAFT_FACTOR))


def _unreadable(path: Path, exc: Exception) -> TrainingError:
    return TrainingError(f"{path}: cannot read this photo ({exc}); remove it from the photos to pretrain on")


def _read_rgb(path: Path, side: int) -> Any:
    """One photo, decoded (JPEGs at a reduced scale no smaller than `side`), upright and RGB."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.draft("RGB", (side, side))  # a no-op for other formats; saves most of a large JPEG's decode
            return ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _unreadable(path, exc) from exc


def _check_photos(photos: Sequence[Path]) -> None:
    """At least two photos, each one PIL can identify (its header only: cheap, and fails before training)."""
    from PIL import Image

    if len(photos) < 2:
        raise TrainingError(f"self-supervised pretraining needs at least 2 photos; got {len(photos)}")
    for path in photos:
        try:
            with Image.open(path):
                pass
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise _unreadable(path, exc) from exc


def _build_backbone(model: str) -> tuple[_Backbone, int]:
    """The backbone of the detector `model` builds (its YAML's `backbone` layers), and its layer count."""
    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    try:
        network = DetectionModel(_resolve_spec(model), nc=1, verbose=False)
    except (FileNotFoundError, OSError) as exc:
        raise TrainingError(f"cannot build model {model!r} ({exc}); check the name or path") from exc
    n = len(network.yaml["backbone"])
    for layer in network.model[:n]:
        if layer.f != -1:
            raise TrainingError(
                f"{model}: backbone layer {layer.i} ({type(layer).__name__}) takes input from {layer.f}, not only "
                "the layer before; self-supervised pretraining runs sequential backbones only (e.g. yolo11n.yaml)"
            )
    return _Backbone(network.model[:n]), n


def _view_transform(imgsz: int) -> Callable[[Any], Any]:
    """SimCLR's two random views of a photo, with the mild colour jitter of the module docstring, in [0, 1]."""
    return SimCLRTransform(
        input_size=imgsz,
        cj_bright=0.4,
        cj_contrast=0.4,
        cj_sat=0.2,
        cj_hue=0.02,
        random_gray_scale=0.0,
        normalize=None,
    )


def _feature_dim(backbone: _Backbone, imgsz: int) -> int:
    """Channels of the backbone's pooled output (probed once in eval mode: BN needs no batch statistics)."""
    backbone.eval()
    with torch.no_grad():
        dim = int(backbone(torch.zeros(1, 3, imgsz, imgsz)).shape[1])
    backbone.train()
    return dim


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[torch.Generator]:
    """Seed torch and numpy (lightly's blur draws from numpy's global generator), and give the process's
    generators back as they were afterwards; yields a seeded generator for the loader's shuffling."""
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed)
        try:
            yield torch.Generator().manual_seed(seed)
        finally:
            np.random.set_state(numpy_state)


def _train(
    backbone: _Backbone,
    loader: torch.utils.data.DataLoader,
    settings: SelfSupervisedSettings,
    progress: Callable[[int, int], None] | None,
) -> tuple[float, ...]:
    """SimCLR: both views through backbone and projection head, NT-Xent between them. Mean loss per epoch."""
    dim = _feature_dim(backbone, settings.imgsz)
    head = SimCLRProjectionHead(dim, dim, PROJECTION_DIM)
    model = torch.nn.Sequential(backbone, head).to(settings.device).train()
    criterion = NTXentLoss(temperature=settings.temperature)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    losses: list[float] = []
    for epoch in range(settings.epochs):
        total, steps = 0.0, 0
        for first, second in loader:
            loss = criterion(model(first.to(settings.device)), model(second.to(settings.device)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + float(loss.detach()), steps + 1
        losses.append(total / steps)
        if not math.isfinite(losses[-1]):
            raise TrainingError(f"self-supervised loss is {losses[-1]} at epoch {epoch + 1}; lower lr")
        if progress is not None:
            progress(epoch + 1, settings.epochs)
    return tuple(losses)


def _save(backbone: _Backbone, out: Path) -> int:
    """Write the backbone's tensors under the DetectionModel's names (`model.{i}.…`), atomically. Returns the count."""
    state = {f"model.{name}": t.detach().cpu().clone() for name, t in backbone.layers.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(out, buffer.getvalue())
    return len(state)


def pretrain_backbone(
    photos: Sequence[Path],
    out: Path,
    *,
    model: str = "yolo11n.yaml",
    settings: SelfSupervisedSettings = SelfSupervisedSettings(),
    progress: Callable[[int, int], None] | None = None,
) -> BackboneResult:
    """Pretrain the backbone of `model` (a sequential-backbone YAML) with SimCLR on `photos` and write its
    tensors to `out` (a torch file of `{name: tensor}` only). progress(done_epochs, total) after each epoch.
    The process's torch thread count and random generators are as before afterwards."""
    _check_photos(photos)
    started, threads_before = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(settings.threads if settings.threads is not None else cpu_threads(None))
    try:
        with _seeded(settings.seed) as generator:
            backbone, layers = _build_backbone(model)
            dataset = _Photos(photos, _view_transform(settings.imgsz), settings.imgsz)
            batch = min(settings.batch, len(photos))  # drop_last: every batch has >= 2 photos, i.e. negatives
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=0, generator=generator
            )
            losses = _train(backbone, loader, settings, progress)
        tensors = _save(backbone, Path(out))
    finally:
        torch.set_num_threads(threads_before)
    seconds = round(time.perf_counter() - started, 3)
    return BackboneResult(Path(out), tensors, layers, len(photos), settings.epochs, losses, seconds)
