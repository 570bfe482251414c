#!/usr/bin/env bash
# Regenerate the three tables of "Satellite data (issue #11)" in docs/results.md with
# `geofloodsam evaluate`. It changes to the repository root (shared data beside it) first, so a
# relative OUT_DIR is relative to the root:
#
#   bash benchmarks/satellite_tables.sh [OUT_DIR]        # default OUT_DIR /tmp/satellite_tables
#
# (a) the Sen1Floods11 S1 chips, (b) the S2 chip Spain_7370579, (c) the Earth Surface Water
# val split (RGB: no index, so no index/fused rows). Full reports (report.md, plots) go to
# OUT_DIR/{s1,s2,esw_val}; their metrics.csv and per_image.csv are copied to
# docs/satellite/tables/ and the Markdown tables of docs/results.md are printed at the end.
# The encoder runs in fp32 on torch (the reference path; `auto` picks bf16 / OpenVINO where
# available, which moves IoUs by ~0.005). Rerun it after replacing
# a shipped model (geofloodsam/data/*_vit_t.pt): every row is recomputed (the embedding cache
# only saves encoder time, it changes no figure).
#
# GEOFLOODSAM (default: .venv/bin/geofloodsam if present, else geofloodsam) and PYTHON
# (default: .venv/bin/python, else python3) can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/tmp/satellite_tables}
if [[ -x .venv/bin/geofloodsam ]]; then G=${GEOFLOODSAM:-.venv/bin/geofloodsam}; else G=${GEOFLOODSAM:-geofloodsam}; fi
if [[ -x .venv/bin/python ]]; then PY=${PYTHON:-.venv/bin/python}; else PY=${PYTHON:-python3}; fi

# --- the commands quoted in docs/results.md (with geofloodsam for $G and /tmp/satellite_tables for $OUT)
$G evaluate --data ../shared/data/sen1floods11/S1Hand --method index --method sam --method fused --decoder pretrained --decoder flood-decoder-only --decoder flood --decoder satellite-decoder-only --decoder satellite --prompt none --checkpoint ../shared/models/mobile_sam.pt --cache-dir /tmp/eval_cache --device cpu --precision fp32 --runtime torch --examples 2 -q -o "$OUT/s1"
$G evaluate --data ../shared/data/sen1floods11/S2Hand --method index --method sam --method fused --decoder pretrained --decoder flood-decoder-only --decoder flood --decoder satellite-decoder-only --decoder satellite --prompt none --checkpoint ../shared/models/mobile_sam.pt --cache-dir /tmp/eval_cache --device cpu --precision fp32 --runtime torch --examples 1 -q -o "$OUT/s2"
$G evaluate --data ../shared/data/earth-surface-water --split val --method sam --decoder pretrained --decoder flood-decoder-only --decoder flood --decoder satellite-decoder-only --decoder satellite --prompt box --prompt point --prompt none --checkpoint ../shared/models/mobile_sam.pt --cache-dir /tmp/eval_cache --device cpu --precision fp32 --runtime torch --examples 2 -q -o "$OUT/esw_val"

for name in s1 s2 esw_val; do
    mkdir -p "docs/satellite/tables/$name"
    cp "$OUT/$name/metrics.csv" "$OUT/$name/per_image.csv" "docs/satellite/tables/$name/"
done

"$PY" - "$OUT" <<'EOF'
"""Print the Markdown tables of docs/results.md from the three metrics.csv files."""
import sys
from pathlib import Path

import pandas as pd

out = Path(sys.argv[1])
ROWS = [("index alone", "index"), ("SAM pretrained", "pretrained"),
        ("flood decoder only", "flood-decoder-only"), ("flood (adapted)", "flood"),
        ("satellite decoder only", "satellite-decoder-only"), ("satellite (adapted)", "satellite"),
        ("fused (satellite decoder only)", "fused/satellite-decoder-only"),
        ("fused (satellite, adapted)", "fused/satellite")]
for name, title in (("s1", "(a) Sen1Floods11 S1 chips"), ("s2", "(b) S2 chip Spain_7370579")):
    m = pd.read_csv(out / name / "metrics.csv", keep_default_na=False).set_index("model")
    n = int(m["n_images"].max())
    print(f"\n{title}, {n} chip{'s' if n > 1 else ''}, promptless (whole-image box)\n")
    print("| method | pooled IoU | mean IoU |\n| --- | ---: | ---: |")
    for label, key in ROWS:
        r = m.loc[key]
        print(f"| {label} | {r['pooled_iou']:.3f} | {r['iou']:.3f} |")
m = pd.read_csv(out / "esw_val" / "metrics.csv", keep_default_na=False)
print("\n(c) Earth Surface Water val, 10 scenes (pooled IoU / mean IoU)\n")
print("| decoder | box | point | none (whole image) |\n| --- | ---: | ---: | ---: |")
for dec in ("pretrained", "flood-decoder-only", "flood", "satellite-decoder-only", "satellite"):
    cells = []
    for prompt in ("box", "point", "none"):
        r = m[(m["model"] == dec) & (m["prompt"] == prompt)].iloc[0]
        cells.append(f"{r['pooled_iou']:.3f} / {r['iou']:.3f}")
    print(f"| {dec} | " + " | ".join(cells) + " |")
EOF
