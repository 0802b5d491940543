"""annotator.toml -> a frozen Config. The file is the user's: secrets never go in it."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from annotator.classes import CLASS_NAMES, ClassTable
from annotator.errors import ConfigError
from annotator.fsutil import atomic_write_text

CONFIG_NAME = "annotator.toml"
# review priority, the default first; see bootstrap/uncertainty.py and docs/uncertainty.md
UNCERTAINTY_SCORES = ("calibrated-joint", "joint", "heuristic", "flip-consistency")
# the order the review queue serves model predictions in, the default first; see docs/queue-order.md
QUEUE_ORDERS = ("uncertainty-first", "random")
DEFAULT_UNCERTAINTY, DEFAULT_QUEUE_ORDER = UNCERTAINTY_SCORES[0], QUEUE_ORDERS[0]
PREDICT_BACKENDS = ("auto", "torch", "onnx")  # auto: ONNX Runtime where the CPU predicts (training.detectors.runtime)
# The acceptance audit's default tolerance: at most 2% of the accepted photos wrong, below the disagreement between
# dermatologists (reader accuracy 0.949 in the study); bootstrap.acceptance and docs/team-lead.md say why.
DEFAULT_AUDIT_TOLERANCE = 0.02
PREDICT_DECODERS = ("auto", "pil", "device")  # auto: on the GPU where the model runs on one (annotator.device_decode)


@dataclass(frozen=True)
class Config:
    images: Path
    labels: Path | None = None
    classes: tuple[str, ...] = CLASS_NAMES
    aliases: dict[str, str] = field(default_factory=dict)
    # prediction
    default_threshold: float = 0.25
    thresholds: dict[str, float] = field(default_factory=dict)
    predict_imgsz: int = 640
    predict_batch: int = 0  # 0: auto (32 on a GPU, 4 on the CPU, where small batches run faster)
    uncertainty: str = DEFAULT_UNCERTAINTY  # one of UNCERTAINTY_SCORES
    predict_backend: str = "auto"  # one of PREDICT_BACKENDS
    predict_decode: str = "auto"  # one of PREDICT_DECODERS
    # training
    model: str = "auto"  # "auto": yolo11s.yaml on a GPU, yolo11n.yaml on the CPU
    epochs: int = 60
    retrain_epochs: int = 30
    imgsz: int = 640
    batch: int = 16
    pretrained: str | None = None  # a local checkpoint the round-0 model starts from (nothing is downloaded)
    pretrained_sha256: str | None = None  # the sha256 that checkpoint must have (a copied file is checked before use)
    # splits
    test_size: int = 300
    test_fraction: float = 0.10
    val_fraction: float = 0.20
    seed: int = 0
    # pool photos held out of the review queue as a fixed evaluation set (predicted every round, never pushed)
    eval_size: int = 0
    # review queue
    label_studio_url: str | None = None
    project_title: str = "PSL review"
    # double review: a photo whose two reviews agree below this box F1 (IoU 0.5, with class) goes to adjudication
    adjudicate_below_f1: float = 1.0
    queue_order: str = DEFAULT_QUEUE_ORDER  # one of QUEUE_ORDERS
    # finalize: the acceptance audit's tolerance (share of wrong photos among those accepted; docs/team-lead.md)
    audit_tolerance: float = DEFAULT_AUDIT_TOLERANCE

    @property
    def class_table(self) -> ClassTable:
        return ClassTable(self.classes, self.aliases)

    def threshold_for(self, label: str) -> float:
        return float(self.thresholds.get(label, self.default_threshold))

    def with_(self, **changes: Any) -> Config:
        return replace(self, **changes)


def _section(data: dict, name: str) -> dict:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] in {CONFIG_NAME} must be a table")
    return value


# Each plain setting of annotator.toml: (its table, its key there, the Config field, how to read it). A key the
# file leaves out keeps the field's default, so the defaults are written once, in Config.
_SETTINGS: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("predict", "default_threshold", "default_threshold", float),
    ("predict", "imgsz", "predict_imgsz", int),
    ("predict", "batch", "predict_batch", int),
    ("predict", "uncertainty", "uncertainty", str),
    ("predict", "backend", "predict_backend", str),
    ("predict", "decode", "predict_decode", str),
    ("train", "model", "model", str),
    ("train", "epochs", "epochs", int),
    ("train", "retrain_epochs", "retrain_epochs", int),
    ("train", "imgsz", "imgsz", int),
    ("train", "batch", "batch", int),
    ("train", "pretrained_sha256", "pretrained_sha256", str),
    ("split", "test_size", "test_size", int),
    ("split", "test_fraction", "test_fraction", float),
    ("split", "val_fraction", "val_fraction", float),
    ("split", "seed", "seed", int),
    ("split", "eval_size", "eval_size", int),
    ("review", "project_title", "project_title", str),
    ("review", "adjudicate_below_f1", "adjudicate_below_f1", float),
    ("review", "queue_order", "queue_order", str),
    ("finalize", "tolerance", "audit_tolerance", float),
)
# Settings that take one of a few names: (table, key, the names).
_CHOICES = (
    ("predict", "uncertainty", UNCERTAINTY_SCORES),
    ("review", "queue_order", QUEUE_ORDERS),
    ("predict", "backend", PREDICT_BACKENDS),
    ("predict", "decode", PREDICT_DECODERS),
)


def load_config(workspace: Path) -> Config:
    """The workspace's annotator.toml as a Config; a missing file, bad TOML or a bad value is a ConfigError."""
    path = workspace / CONFIG_NAME
    if not path.exists():
        raise ConfigError(f"{path} not found: run `annotator init {workspace} --images DIR` first")
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from exc
    tables = {n: _section(data, n) for n in ("workspace", "classes", "predict", "train", "split", "review", "finalize")}
    ws, cls, pred, train = tables["workspace"], tables["classes"], tables["predict"], tables["train"]
    if "images" not in ws:
        raise ConfigError(f'{path}: [workspace] images = "..." is missing')
    for table, key, names in _CHOICES:
        if key in tables[table] and str(tables[table][key]) not in names:
            raise ConfigError(
                f"{path}: [{table}] {key} = {tables[table][key]!r} is unknown; choose one of " + ", ".join(names)
            )
    try:
        return Config(
            images=Path(ws["images"]),
            labels=Path(ws["labels"]) if ws.get("labels") else None,
            classes=tuple(cls.get("names", CLASS_NAMES)),
            aliases={str(k): str(v) for k, v in cls.get("aliases", {}).items()},
            thresholds={str(k): float(v) for k, v in pred.get("thresholds", {}).items()},
            pretrained=str(train["pretrained"]) if train.get("pretrained") else None,
            label_studio_url=tables["review"].get("url"),
            **{name: read(tables[table][key]) for table, key, name, read in _SETTINGS if key in tables[table]},
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: a value has the wrong type ({exc}); fix the file") from exc


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def config_to_toml(cfg: Config) -> str:
    lines = [
        "# annotator workspace settings. Label Studio tokens never go here (use LABEL_STUDIO_API_KEY).",
        "",
        "[workspace]",
        f"images = {_toml_value(str(cfg.images))}",
    ]
    if cfg.labels:
        lines.append(f"labels = {_toml_value(str(cfg.labels))}")
    lines += [
        "",
        "[classes]",
        f"names = {_toml_value(list(cfg.classes))}",
        "",
        "[classes.aliases]",
        '# "Mel" = "mel"  (the built-in table already knows the common spellings)',
    ]
    lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in cfg.aliases.items()]
    lines += [
        "",
        "[predict]",
        f"default_threshold = {cfg.default_threshold}",
        f"imgsz = {cfg.predict_imgsz}",
        f"batch = {cfg.predict_batch}",
        f"uncertainty = {_toml_value(cfg.uncertainty)}  # review priority: "
        + ", ".join(f'"{name}"' for name in UNCERTAINTY_SCORES)
        + " (docs/uncertainty.md)",
        f"backend = {_toml_value(cfg.predict_backend)}",
        f"decode = {_toml_value(cfg.predict_decode)}",
        "",
        "[predict.thresholds]",
        "# mel = 0.30",
    ]
    lines += [f"{_toml_value(k)} = {v}" for k, v in cfg.thresholds.items()]
    lines += [
        "",
        "[train]",
        f"model = {_toml_value(cfg.model)}",
        f"epochs = {cfg.epochs}",
        f"retrain_epochs = {cfg.retrain_epochs}",
        f"imgsz = {cfg.imgsz}",
        f"batch = {cfg.batch}",
        f"pretrained = {_toml_value(cfg.pretrained)}"
        if cfg.pretrained
        else '# pretrained = "yolo11n.pt"  (local weights the first model starts from)',
        *([f"pretrained_sha256 = {_toml_value(cfg.pretrained_sha256)}"] if cfg.pretrained_sha256 else []),
        "",
        "[split]",
        f"test_size = {cfg.test_size}",
        f"test_fraction = {cfg.test_fraction}",
        f"val_fraction = {cfg.val_fraction}",
        f"seed = {cfg.seed}",
        f"eval_size = {cfg.eval_size}  # pool photos kept out of the queue to compare rounds on the same photos",
        "",
        "[review]",
        f"project_title = {_toml_value(cfg.project_title)}",
        f"adjudicate_below_f1 = {cfg.adjudicate_below_f1}  # two reviews below this box F1 are adjudicated",
        f'queue_order = {_toml_value(cfg.queue_order)}  # or "random" (docs/queue-order.md)',
    ]
    if cfg.label_studio_url:
        lines.append(f"url = {_toml_value(cfg.label_studio_url)}")
    lines += [
        "",
        "[finalize]",
        f"tolerance = {cfg.audit_tolerance}  # the acceptance audit's bound on wrong photos (docs/team-lead.md)",
    ]
    return "\n".join(lines) + "\n"


def save_config(workspace: Path, cfg: Config) -> None:
    atomic_write_text(workspace / CONFIG_NAME, config_to_toml(cfg))
