"""CPU inference through ONNX Runtime: a round's Ultralytics model exported to ONNX once, cached beside its weights.

On the CPU the network is the bottleneck of pre-annotation, and ONNX Runtime runs the same yolo11n ~1.5x faster
than PyTorch here with the same boxes (docs/performance.md). `RuntimePredictor` keeps the Predictor contract:
same letterbox, same NMS, boxes in each array's own pixels, scores set. It only predicts: training, validation and
saving stay with the PyTorch detector it was exported from.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annotator.config import PREDICT_BACKENDS
from annotator.errors import TrainingError
from annotator.types import Box
from training.constants import PREDICT_FLOOR
from training.detectors.base import Detector, Predictor
from training.detectors.pretrained import sha256_of
from training.offline import prepare_ultralytics

BACKENDS = PREDICT_BACKENDS  # [predict] backend in annotator.toml: auto, torch, onnx
RUNTIME = "onnxruntime"
_SOURCE_KEY = "annotator_source_sha256"  # the weights file the export was made from
_GRAPH_KEY = "annotator_graph_sha256"  # the graph as written: a damaged file no longer matches it
_TOOLS_KEY = "annotator_exported_with"  # an export by other tool versions is made again
# an export whose raw output strays further from PyTorch's on the check input is refused: a broken export is off by
# far more, while float32 summation order alone moves an untrained network's raw boxes by up to ~0.6 px on that input
_CHECK_BOX_PX, _CHECK_SCORE = 2.0, 0.02
# "auto" exports only for at least this many photos: an export takes 5-7 s here and saves ~40 ms of CPU a photo
# (docs/performance.md), paying off from ~100-150 photos; an export already cached is always used
AUTO_MIN_PHOTOS = 200

log = logging.getLogger(__name__)


def exported_path(weights: Path) -> Path:
    """Where the ONNX export of `weights` is cached: beside it (rounds/NNN/model.pt -> rounds/NNN/model.onnx)."""
    return Path(weights).with_suffix(".onnx")


def _tool_versions() -> str:
    from importlib.metadata import version

    return " ".join(f"{name}=={version(name)}" for name in ("ultralytics", "torch", "onnx"))


def _graph_digest(model: Any) -> str:
    return hashlib.sha256(model.graph.SerializeToString()).hexdigest()


def _current(path: Path, source_sha256: str) -> bool:
    """True when `path` is a whole export of the weights with this digest, made by the tool versions installed."""
    import onnx

    if not path.is_file():
        return False
    try:
        model = onnx.load(str(path))
    except Exception:  # truncated or not an ONNX file
        return False
    meta = {p.key: p.value for p in model.metadata_props}
    return (
        meta.get(_SOURCE_KEY) == source_sha256
        and meta.get(_TOOLS_KEY) == _tool_versions()
        and meta.get(_GRAPH_KEY) == _graph_digest(model)
    )


def export_onnx(weights: Path) -> Path:
    """The ONNX export of an Ultralytics checkpoint, made once and cached beside it (`exported_path`).

    A cached file is reused only when it was made from these exact weights (sha256) by the installed tool
    versions and is undamaged; anything else is exported again. The export is written under a temporary
    name in the same folder and renamed into place, so a killed export never leaves a half file behind.
    It is checked against PyTorch on a fixed input before it is kept. Nothing is installed or downloaded."""
    weights = Path(weights)
    target = exported_path(weights)
    if not weights.is_file():
        raise TrainingError(f"{weights}: model weights not found; run the round again or name an existing file")
    source = sha256_of(weights)
    if _current(target, source):
        return target
    prepare_ultralytics()
    import ultralytics.utils.checks as checks

    checks.AUTOINSTALL = False  # a missing exporter dependency is an error here, never a pip install at run time
    try:
        import onnx  # noqa: F401  (pinned in constraints.txt; Ultralytics would otherwise try to install it)
    except ImportError as exc:
        raise TrainingError(
            "the onnx package is missing; reinstall the environment (make venv) or set "
            '[predict] backend = "torch" in annotator.toml'
        ) from exc
    work = Path(tempfile.mkdtemp(prefix=f".{weights.stem}-onnx-", dir=weights.parent))
    try:
        copy = work / weights.name
        shutil.copyfile(weights, copy)
        made = _export(copy)
        _stamp(made, source)
        _check_against_torch(copy, made)
        os.replace(made, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _export(weights: Path) -> Path:
    from ultralytics import YOLO

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter from torch.onnx
            made = YOLO(str(weights)).export(format="onnx", dynamic=True, simplify=False, device="cpu", verbose=False)
    except Exception as exc:
        raise TrainingError(
            f'{weights.name}: export to ONNX failed ({exc}); set [predict] backend = "torch" '
            "in annotator.toml to predict with PyTorch"
        ) from exc
    if not made or not Path(made).is_file():
        raise TrainingError(
            f'{weights.name}: export to ONNX wrote no file; set [predict] backend = "torch" '
            "in annotator.toml to predict with PyTorch"
        )
    return Path(made)


def _stamp(path: Path, source_sha256: str) -> None:
    """Record which weights and tool versions made the export, and a digest of its graph."""
    import onnx

    model = onnx.load(str(path))
    for key, value in (
        (_SOURCE_KEY, source_sha256),
        (_TOOLS_KEY, _tool_versions()),
        (_GRAPH_KEY, _graph_digest(model)),
    ):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))


def _check_input() -> np.ndarray:
    """A fixed (1, 3, 448, 640) input in [0, 1]: smooth gradients plus noise, so every layer sees structure."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:448, 0:640].astype(np.float32)
    base = np.stack([xs / 640, ys / 448, (xs + ys) / 1088])
    return np.clip(base + rng.normal(0, 0.1, base.shape), 0, 1).astype(np.float32)[None]


def _check_against_torch(weights: Path, onnx_path: Path) -> None:
    """Refuse an export whose raw output differs from PyTorch's on the check input (boxes in px, class scores)."""
    import torch
    from ultralytics import YOLO

    x = _check_input()
    network = YOLO(str(weights)).model.float().eval()
    with torch.inference_mode():
        expected = network(torch.from_numpy(x))
    expected = (expected[0] if isinstance(expected, (list, tuple)) else expected).numpy()  # (1, 4 + nc, anchors)
    got = _session(onnx_path, threads=1).run(None, {"images": x})[0]
    if got.shape != expected.shape:
        raise TrainingError(
            f"{onnx_path.name}: the export's output has shape {got.shape}, PyTorch's {expected.shape}; "
            'set [predict] backend = "torch" in annotator.toml'
        )
    box_error = float(np.abs(got[:, :4] - expected[:, :4]).max())
    score_error = float(np.abs(got[:, 4:] - expected[:, 4:]).max())
    if box_error > _CHECK_BOX_PX or score_error > _CHECK_SCORE:
        raise TrainingError(
            f"{onnx_path.name}: the export disagrees with PyTorch (boxes {box_error:.3g} px, scores "
            f'{score_error:.3g}); set [predict] backend = "torch" in annotator.toml'
        )


def _session(path: Path, *, threads: int) -> Any:
    """An ONNX Runtime session on the CPU running on `threads` threads (one per pipeline: the engine runs one
    pipeline per core, and a session that spins on idle threads would take the other pipelines' cores)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise TrainingError(
            "the onnxruntime package is missing; reinstall the environment (make venv) or set "
            '[predict] backend = "torch" in annotator.toml'
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own error types
        raise TrainingError(
            f"{path}: ONNX Runtime cannot load it ({exc}); delete it to export again, or set "
            '[predict] backend = "torch" in annotator.toml'
        ) from exc


class RuntimePredictor(Predictor):
    """An Ultralytics detector's predictions through ONNX Runtime on the CPU; training, validation and saving
    stay with the PyTorch detector it wraps (`source`), which also predicts on a GPU.

    `predict_arrays` letterboxes each photo as Ultralytics does for one photo (the smallest stride-multiple
    rectangle), runs photos of one shape together, and applies Ultralytics' own NMS and box scaling: its boxes
    equal PyTorch's for the same photo (within 1 px, scores within 0.01: tests/training/test_runtime.py)."""

    family = RUNTIME

    def __init__(self, source: Detector, onnx_path: Path, *, threads: int = 1) -> None:
        super().__init__(source.classes)
        self.source = source
        self.onnx_path = Path(onnx_path)
        self.threads = threads
        prepare_ultralytics()
        self.session = _session(self.onnx_path, threads=threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.stride = int(float(meta.get("stride", 32)))
        from ultralytics.cfg import get_cfg

        defaults = get_cfg()  # the thresholds PyTorch's predict uses
        self.iou, self.max_det = float(defaults.iou), int(defaults.max_det)

    @classmethod
    def from_weights(cls, source: Detector, weights: Path, *, threads: int = 1) -> RuntimePredictor:
        """Wrap `source` (loaded from `weights`) with the cached export of `weights`, exporting it when needed."""
        return cls(source, export_onnx(weights), threads=threads)

    def predict_arrays(
        self,
        images: Sequence[np.ndarray],
        *,
        conf: float = PREDICT_FLOOR,
        imgsz: int = 640,
        device: str | None = None,
        half: bool | None = None,
    ) -> list[list[Box]]:
        """As `Predictor.predict_arrays`; a GPU device goes to the PyTorch detector. `half` is ignored on the CPU."""
        if device not in (None, "cpu"):
            return self.source.predict_arrays(images, conf=conf, imgsz=imgsz, device=device)
        if not images:
            return []
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils.checks import check_imgsz

        letterbox = LetterBox(check_imgsz(imgsz, stride=self.stride, min_dim=2), auto=True, stride=self.stride)
        padded = [letterbox(image=np.ascontiguousarray(a)) for a in images]  # RGB in, RGB out: the pad is grey
        out: list[list[Box]] = [[] for _ in images]
        for shape in dict.fromkeys(p.shape for p in padded):
            members = [i for i, p in enumerate(padded) if p.shape == shape]
            for i, boxes in zip(
                members,
                self._predict_same_shape([padded[i] for i in members], [images[i].shape for i in members], conf),
                strict=True,
            ):
                out[i] = boxes
        return out

    def _predict_same_shape(
        self, padded: Sequence[np.ndarray], shapes: Sequence[tuple[int, ...]], conf: float
    ) -> list[list[Box]]:
        import torch
        from ultralytics.utils import nms, ops

        stacked = np.stack(padded)  # (N, H, W, 3) uint8
        x = np.empty((stacked.shape[0], 3, *stacked.shape[1:3]), dtype=np.float32)  # (N, 3, H, W) in [0, 1]
        np.divide(stacked.transpose(0, 3, 1, 2), np.float32(255), out=x)
        raw = self.session.run(None, {"images": x})[0]  # (N, 4 + nc, anchors): xywh in input pixels, class scores
        kept = nms.non_max_suppression(
            torch.from_numpy(raw), conf, self.iou, None, False, max_det=self.max_det, nc=0
        )  # per photo (M, 6): x1, y1, x2, y2, score, class
        result = []
        for det, shape in zip(kept, shapes, strict=True):
            det[:, :4] = ops.scale_boxes(x.shape[2:], det[:, :4], shape)  # back to the array's pixels, clipped
            result.append(
                [
                    Box(self.classes[int(c)], float(x1), float(y1), float(x2), float(y2), score=float(s))
                    for x1, y1, x2, y2, s, c in det.numpy()
                ]
            )
        return result

    def replicate(self) -> RuntimePredictor:
        """Another session on the same export (one per pipeline); the PyTorch detector is shared, not copied."""
        return RuntimePredictor(self.source, self.onnx_path, threads=self.threads)


def exportable(detector: Predictor) -> bool:
    """True for the Ultralytics models `RuntimePredictor` reproduces: YOLO detection with NMS after the network
    (not RT-DETR, not the NMS-free end-to-end heads, whose outputs are post-processed differently)."""
    model = getattr(detector, "model", None)
    network = getattr(model, "model", None)
    return (
        type(model).__name__ == "YOLO"
        and getattr(model, "task", None) == "detect"
        and not getattr(network, "end2end", False)
    )


def runs_on_cpu(device: str | None) -> bool:
    """True when predictions with this device setting run on the CPU (None: the GPU if there is one)."""
    if device == "cpu":
        return True
    if device is not None:
        return False
    import torch

    return not torch.cuda.is_available()


def prediction_detector(
    detector: Predictor,
    weights: Path | None,
    *,
    backend: str = "auto",
    device: str | None = None,
    photos: int | None = None,
) -> tuple[Predictor, str]:
    """The predictor to predict with, and a note naming the backend (and why, when PyTorch is kept).

    backend "torch": `detector` itself. "auto" or "onnx": where the CPU predicts, a `RuntimePredictor` over the
    cached ONNX export of `weights` (an Ultralytics checkpoint); on a GPU, `detector`. Families ONNX Runtime does
    not run stay on PyTorch under "auto", and so do fewer than AUTO_MIN_PHOTOS `photos` unless an export of
    `weights` is cached already; when an export fails, "auto" keeps PyTorch and says why; "onnx" fails."""
    if backend not in BACKENDS:
        raise TrainingError(f"[predict] backend = {backend!r} is unknown; choose one of " + ", ".join(BACKENDS))
    if backend == "torch":
        return detector, "torch"
    if not runs_on_cpu(device):
        return detector, "torch (GPU)"
    from training.detectors.ultralytics import UltralyticsDetector, is_ultralytics_checkpoint

    if not isinstance(detector, UltralyticsDetector) or not exportable(detector):
        if backend == "onnx":
            raise TrainingError(
                f"{getattr(detector, 'spec', detector.family)} is not exported: ONNX Runtime runs "
                "Ultralytics YOLO detectors with NMS after the network; set [predict] backend = "
                '"torch" or "auto" in annotator.toml'
            )
        return detector, "torch"
    if (
        backend == "auto"
        and photos is not None
        and photos < AUTO_MIN_PHOTOS
        and weights is not None
        and not (Path(weights).is_file() and _current(exported_path(weights), sha256_of(weights)))
    ):
        return detector, f"torch ({photos} photos: fewer than the {AUTO_MIN_PHOTOS} an ONNX export pays for)"
    try:
        if weights is None or not is_ultralytics_checkpoint(Path(weights)):
            raise TrainingError(
                f'{weights}: no Ultralytics checkpoint to export; set [predict] backend = "torch" in annotator.toml'
            )
        return RuntimePredictor.from_weights(detector, Path(weights)), RUNTIME
    except TrainingError as exc:
        if backend == "onnx":
            raise
        log.warning("predicting with PyTorch: %s", exc)
        return detector, f"torch ({exc})"
