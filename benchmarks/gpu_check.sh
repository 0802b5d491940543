#!/usr/bin/env bash
# One check of the GPU path (issue 14 item 3), on one GPU machine, in under 13 minutes, printing one table:
#   1. benchmarks/preannotate.py: the engine, the naive loop and Ultralytics' folder predict on the same 18 MP photos
#   2. benchmarks/pipeline_capacity.py: the engine with a zero-cost stand-in model, PIL decode vs device decode (nvJPEG)
#   3. a small round (bootstrap.rounds.run_round, no review queue): training throughput, then the round's own
#      pre-annotation with its real model ([predict] decode = "auto": nvJPEG on the GPU)
#   4. the study's Table 1 under the gpu-full profile (issue 24; benchmarks/families.py --profile gpu-full on hard
#      synthetic photos): every family's stop reason, minutes, ms/photo, and whether it learnt. In this check each
#      family's budget is cut to FAMILY_BUDGET minutes (default 0.3) so the step fits; FAMILY_BUDGET= (empty) runs
#      the profile's own 120 minutes a family: the study-scale run, hours, with --families-only
#
# STATUS: THIS SCRIPT HAS NOT RUN ON A GPU. It was written and checked on a 2-core CPU machine without one
# (`bash -n`, `--dry-run`, and a whole run with `--cpu` at toy size); its GPU figures, its timings and the wheel
# install are unverified until someone runs it on a GPU machine and reads the output.
#
# usage (from the repository root):
#   bash benchmarks/gpu_check.sh [WHEELS_DIR] [--photos N] [--epochs N] [--out DIR] [--dry-run] [--cpu]
#                                [--families-only]
#
#   WHEELS_DIR   wheels installed with --no-deps into /tmp/site when ultralytics is not importable (carry them: the
#                GPU machine has torch, torchvision, pillow, numpy, opencv, onnxruntime but not these): ultralytics,
#                ultralytics-thop, polars 1.30.0, nvidia-ml-py, ultralytics-platform, httpx, httpcore, h11, anyio,
#                and pycocotools (the round's test evaluation) if the machine lacks it. Versions: constraints.txt.
#   --photos N   photos every pre-annotation method is timed on (default 240 on a GPU)
#   --epochs N   epochs of the small round (default 5)
#   --out DIR    where the photos, logs and JSON figures go (default /tmp/gpu-check)
#   --dry-run    print what would run, check the Python and its imports, run nothing
#   --cpu        the same steps on the CPU at toy size (small photos, 1 epoch): checks the plumbing, not the speed
#   --families-only   step 4 alone (FAMILY_BUDGET and FAMILY_PHOTOS, default 300, size it)
#
# The machine's load average is printed with the table; nothing reaches the network (Ultralytics runs offline).

set -euo pipefail

WHEELS="" PHOTOS="" EPOCHS="" OUT="/tmp/gpu-check" DRY=0 CPU=0 FAMILIES_ONLY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --photos) PHOTOS="$2"; shift 2 ;;
        --epochs) EPOCHS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        --cpu) CPU=1; shift ;;
        --families-only) FAMILIES_ONLY=1; shift ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        -*) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) WHEELS="$1"; shift ;;
    esac
done

cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"; elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
export PYTHONUNBUFFERED=1 PYTHONWARNINGS="ignore::DeprecationWarning"

if [[ $CPU -eq 1 ]]; then
    DEVICE=cpu SIZE=small MODEL=yolo11n.yaml IMGSZ=160 BATCH=8 PHOTOS=${PHOTOS:-16} EPOCHS=${EPOCHS:-1} CALIBRATE=2
    DECODERS=pil,device
    # the gpu-full protocol's plumbing at toy size: two CPU-sized families, 96 px, 2 epochs
    FAMILY_ARGS=(--images 20 --size small --models yolo11n,fasterrcnn_mobilenet --device cpu --workers 0 --imgsz 96
                 --epochs 2 --budget-minutes 1 --resamples 0)
else
    DEVICE=0 SIZE=dslr MODEL=yolo11s.yaml IMGSZ=640 BATCH=32 PHOTOS=${PHOTOS:-240} EPOCHS=${EPOCHS:-5} CALIBRATE=6
    DECODERS=pil,device
    FAMILY_ARGS=(--images "${FAMILY_PHOTOS:-300}" --size phone --resamples 200)
    if [[ -n "${FAMILY_BUDGET-0.3}" ]]; then FAMILY_ARGS+=(--budget-minutes "${FAMILY_BUDGET-0.3}"); fi
fi
EXTRA=$((CALIBRATE + 2))  # benchmarks/preannotate.py's warm-up and calibration photos, never timed
DATA="$OUT/data" LOGS="$OUT/logs"
STEP_LIMIT=${STEP_LIMIT:-240}  # seconds any one step may take before it is stopped
FAMILY_LIMIT=${FAMILY_LIMIT:-300}  # step 4's own limit: 5 families x (0.3 min + building, scoring) plus photos
if [[ $FAMILIES_ONLY -eq 1 && -z "${FAMILY_BUDGET-0.3}" ]]; then FAMILY_LIMIT=$((5 * 130 * 60)); fi  # study scale
DEADLINE=$((SECONDS + ${TOTAL_LIMIT:-750}))  # and all of them together, so the check ends inside 13 minutes
if [[ $FAMILIES_ONLY -eq 1 ]]; then DEADLINE=$((SECONDS + FAMILY_LIMIT + 30)); fi

say() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
run() {  # run NAME COMMAND...: logged to $LOGS/NAME.log, stopped after STEP_LIMIT s; a failed step does not stop the rest
    local name="$1"; shift
    if [[ $DRY -eq 1 ]]; then
        local shown=() arg
        for arg in "$@"; do [[ $arg == *$'\n'* ]] && shown+=("'<script>'") || shown+=("$arg"); done
        echo "would run ($name): ${shown[*]}"
        return 0
    fi
    local started=$SECONDS status=0 limit=$((DEADLINE - SECONDS)) step_limit=${LIMIT:-$STEP_LIMIT}
    if [[ $limit -gt $step_limit ]]; then limit=$step_limit; fi
    if [[ $limit -lt 10 ]]; then
        echo "$name: skipped, the time for the whole check is spent" | tee "$LOGS/$name.log" | tee -a "$LOGS/steps.txt"
        return 0
    fi
    timeout "$limit" "$@" 2>&1 | tee "$LOGS/$name.log" || status=$?
    echo "$name: exit $status after $((SECONDS - started)) s" | tee -a "$LOGS/steps.txt"
}

say "python and packages"
echo "python: $PY ($($PY -c 'import sys; print(sys.version.split()[0])'))"
if ! $PY -c "import ultralytics" 2>/dev/null; then
    if [[ -z "$WHEELS" ]] || ! compgen -G "$WHEELS/*.whl" >/dev/null; then
        echo "gpu_check: ultralytics is not importable and no folder of wheels was given (${WHEELS:-none}): pass the" \
             "carried wheels' folder as the first argument (see the header of $0)" >&2
        exit 2
    fi
    if [[ $DRY -eq 1 ]]; then
        echo "would install: $(ls "$WHEELS"/*.whl | xargs -n1 basename | tr '\n' ' ')"
    else
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "$WHEELS"/*.whl
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
$PY - <<'EOF' || { [[ $DRY -eq 1 ]] || exit 2; }
import importlib
def missing(names):
    out = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any import failure is a missing package here
            out.append(f"{name} ({type(exc).__name__}: {exc})")
    return out
if needed := missing(["torch", "torchvision", "ultralytics", "lxml", "rich", "typer", "sklearn", "matplotlib", "PIL",
                      "numpy"]):
    print("missing: " + "; ".join(needed))
    raise SystemExit(1)
if later := missing(["pycocotools"]):
    print("missing, so the round step will fail (add its wheel): " + "; ".join(later))
import torch, torchvision
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, GPU: {gpu}")
EOF
if [[ $CPU -eq 0 && $DRY -eq 0 ]] && ! $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA GPU visible to torch; run with --cpu to check the plumbing on the CPU" >&2
    exit 2
fi
echo "device $DEVICE, $PHOTOS x $SIZE photos, model $MODEL at $IMGSZ, round of $EPOCHS epochs, out $OUT"
mkdir -p "$OUT" "$LOGS"
[[ $DRY -eq 1 ]] || : >"$LOGS/steps.txt"

if [[ $FAMILIES_ONLY -eq 0 ]]; then
say "photos"  # one set for every step: 30% with labelImg XML (the round trains on those, pre-annotates the rest)
have=0
if [[ -d "$DATA/images" ]]; then have=$(find "$DATA/images" -name '*.jpg' | wc -l); fi
if [[ $have -ge $((PHOTOS + EXTRA)) ]]; then
    echo "reusing $have photos in $DATA"
else
    [[ $DRY -eq 1 ]] || rm -rf "$DATA"
    # with -c, not a script on stdin: the generator's worker processes cannot start from a stdin script
    run generate $PY -c 'import sys, time; from pathlib import Path; from annotator.synthetic import generate
t = time.perf_counter()
s = generate(Path(sys.argv[1]), images=int(sys.argv[2]), labelled_fraction=0.3, seed=7, size=sys.argv[3],
             workers=int(sys.argv[4]))
print(f"generated {s.images} {sys.argv[3]} photos ({s.labelled} labelled) in {time.perf_counter() - t:.1f} s")' \
        "$DATA" "$((PHOTOS + EXTRA))" "$SIZE" "$(nproc)"
fi

say "pre-annotation: engine, naive loop, Ultralytics folder predict (benchmarks/preannotate.py)"
PRE_ARGS=(--photos "$PHOTOS" --size "$SIZE" --model "$MODEL" --imgsz "$IMGSZ" --calibrate "$CALIBRATE" --data "$DATA")
PRE_HELP=$($PY -m benchmarks.preannotate --help 2>/dev/null || true)
if [[ $PRE_HELP == *--device* ]]; then
    PRE_ARGS+=(--device "$DEVICE")
    run preannotate $PY -m benchmarks.preannotate "${PRE_ARGS[@]}"
elif [[ $CPU -eq 1 ]]; then
    run preannotate $PY -m benchmarks.preannotate "${PRE_ARGS[@]}"
else
    echo "SKIPPED: benchmarks/preannotate.py has no --device option, so its rows would be CPU figures; its owner" \
         "must add one (the round below still measures the engine with a real model on the GPU)" \
        | tee "$LOGS/preannotate.log"
fi

say "pipeline capacity: the engine with a zero-cost model, PIL vs device decode (benchmarks/pipeline_capacity.py)"
run capacity $PY -m benchmarks.pipeline_capacity --photos "$PHOTOS" --size "$SIZE" --imgsz "$IMGSZ" \
    --decoders "$DECODERS" --device "$DEVICE" --data "$DATA" --json "$OUT/capacity.json"

say "a small round: training throughput, then the round's pre-annotation with its model (bootstrap.rounds.run_round)"
ROUND_PY=$(cat <<'EOF'
import json, shutil, sys, time
from pathlib import Path
from training.offline import prepare_ultralytics
prepare_ultralytics()
from annotator.config import Config
from annotator.ingest import ingest
from annotator.store import Workspace
from bootstrap.rounds import RoundSettings, run_round

data, out, model, epochs, imgsz, batch, device = (Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]),
                                                  int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
root = out / "round-ws"
shutil.rmtree(root, ignore_errors=True)
ws = Workspace.create(root, Config(images=data / "images", labels=data / "labels", test_size=30))
ingest(ws, images=data / "images", labels=data / "labels")
started = time.perf_counter()
result = run_round(ws, 0, RoundSettings(model=model, epochs=epochs, imgsz=imgsz, batch=batch, device=device))
seconds = time.perf_counter() - started
args = json.loads((ws.round_dir(0) / "train_args.json").read_text())
figures = {"model": model, "epochs": args["epochs_run"], "images": args["images"], "train_seconds": args["train_seconds"],
           "round_seconds": round(seconds, 1), "test": result.metrics.get("test", {}).get("map50"),
           "preannotate": result.preannotate.to_dict() if result.preannotate else None,
           "decoders": dict(result.preannotate.decoders) if result.preannotate else {}}
(out / "round.json").write_text(json.dumps(figures, indent=1, default=str))
print(json.dumps(figures, default=str))
ws.close()
EOF
)
run round $PY -c "$ROUND_PY" "$DATA" "$OUT" "$MODEL" "$EPOCHS" "$IMGSZ" "$BATCH" "$DEVICE"
fi  # FAMILIES_ONLY

say "the study's Table 1 under the gpu-full profile (benchmarks/families.py ${FAMILY_ARGS[*]})"
[[ $DRY -eq 1 ]] || rm -rf "$OUT/families"
LIMIT=$FAMILY_LIMIT run families $PY -m benchmarks.families --profile gpu-full --preset hard --test-fraction 0.3 \
    "${FAMILY_ARGS[@]}" --out "$OUT/families"

say "table"
if [[ $DRY -eq 1 ]]; then
    echo "would print the table from $LOGS/preannotate.log, $OUT/capacity.json, $OUT/round.json, $OUT/families"
    exit 0
fi
FAMILIES_ONLY=$FAMILIES_ONLY $PY - "$OUT" "$DEVICE" <<'EOF'
import json, os, re, sys
from pathlib import Path
out, device = Path(sys.argv[1]), sys.argv[2]
only = os.environ.get("FAMILIES_ONLY") == "1"  # steps 1-3 did not run: no rows for them
rows = []  # (what, photos, seconds, img/s, note)
log = out / "logs" / "preannotate.log"
text = log.read_text() if log.exists() else ""
def column_end(header, name):  # the table's numbers are right-aligned under their column's name
    m = re.search(rf"(?<![^ ]){re.escape(name)}(?![^ ])", header)
    return m.end() if m else None

rates = {}
header = None
for line in text.splitlines():
    if line.startswith("method"):
        header = line
        continue
    if header is None:
        continue
    if not line.strip():
        header = None
        continue
    ends = {name: column_end(header, name) for name in ("threads", "cores busy", "photos", "s", "img/s", "vs naive")}
    try:
        value = {name: line[:end].split()[-1] for name, end in ends.items() if end}
        rate = float(value["img/s"])
    except (KeyError, IndexError, ValueError):
        header = None  # past the table
        continue
    what = re.sub(r"\s{2,}", "; ", line[:header.index("threads") if "threads" in header else 60].strip())
    rows.append((what, value.get("photos", "-"), value.get("s", "-"), f"{rate:.1f}",
                 f"{value.get('vs naive', '?')} naive, {value.get('cores busy', '?')} cores busy"))
    rates[what.split(";")[0]] = rate
if not rates and not only:
    rows.append(("benchmarks/preannotate.py", "-", "-", "-", (text.strip().splitlines() or ["no output"])[-1][:90]))
cap = out / "capacity.json"
if cap.exists():
    for r in json.loads(cap.read_text())["rows"]:
        by = ", ".join(f"{k} {v}" for k, v in sorted(r["decoded_by"].items()))
        rows.append((f"capacity, zero-cost model, {r['decoder']} decode", r["photos"], f"{r['seconds']:.1f}",
                     f"{r['rate']:.1f}", f"{r['rate_per_busy_core']:.1f}/busy core, {r['cores_busy']:.1f} busy; {by}"))
elif not only:
    rows.append(("capacity", "-", "-", "-", "did not finish: see logs/capacity.log"))
rnd = out / "round.json"
if rnd.exists():
    r = json.loads(rnd.read_text())
    n_train = r["images"]["train"]
    rows.append((f"round 0 training, {r['model']}, {r['epochs']} epochs", n_train * r["epochs"],
                 f"{r['train_seconds']:.1f}", f"{n_train * r['epochs'] / r['train_seconds']:.1f}",
                 f"train images x epochs / train s (start-up and val incl.); {n_train} train, {r['images']['val']} val"))
    p = r["preannotate"] or {}
    if p:
        by = ", ".join(f"{k} {v}" for k, v in sorted(r["decoders"].items()))
        rows.append(("round 0 pre-annotation, its model", p["predicted"], f"{p['seconds']:.1f}",
                     f"{p['images_per_second']:.1f}", f"decoded by {by}"))
    rows.append(("round 0 whole (train, evaluate, pre-annotate)", "-", f"{r['round_seconds']:.1f}", "-",
                 f"test mAP50 {r['test']}"))
elif not only:
    rows.append(("round 0", "-", "-", "-", "did not finish: see logs/round.log"))
bench = out / "families" / "report" / "benchmark.json"
if bench.exists():
    b = json.loads(bench.read_text())
    for r in (r for r in b["raters"] if r["kind"] == "model"):
        stop = r.get("stopping") or {}
        ips = r.get("inference_images_per_second")
        verdict = r.get("error") or ("did not learn" if r.get("learned") is False else "learnt")
        best = max(stop.get("curve_map50") or [0.0])
        rows.append((f"gpu-full {r['name']} ({r.get('family')})", b["split_sizes"].get("train", "-"),
                     f"{r.get('train_seconds') or 0:.1f}", "-" if not ips else f"{ips:.1f}",
                     f"stop {stop.get('reason')} after {stop.get('epochs_run')} epochs, best val mAP50 {best:.3f}, "
                     f"{verdict}" + (f", {1000 / ips:.1f} ms/photo" if ips else "")))
else:
    rows.append(("gpu-full families", "-", "-", "-", "did not finish: see logs/families.log"))
widths = [max(len(str(row[i])) for row in rows + [("what", "photos", "s", "img/s", "note")]) for i in range(5)]
print(f"GPU check on device {device} ({os.cpu_count()} cores)")
for row in [("what", "photos", "s", "img/s", "note"), *rows]:
    print("  ".join(str(v).ljust(w) if i in (0, 4) else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
engine = max((v for k, v in rates.items() if k.startswith("engine")), default=None)
folder = next((v for k, v in rates.items() if "folder" in k), None)
if engine and folder:
    print(f"engine vs Ultralytics' folder predict: {engine / folder:.1f}x (goal 5x); engine {engine:.0f} img/s "
          "(goal >= 300 end to end on an H200)")
print("load average (1, 5, 15 min): " + ", ".join(f"{v:.1f}" for v in os.getloadavg()))
print("steps: " + "; ".join((out / "logs" / "steps.txt").read_text().split("\n")).strip("; "))
EOF
