#!/usr/bin/env bash
# Run every command on the project's sample scenes (and evaluate on the shared val split) with
# the code of SRC_TREE (a checkout or `git worktree` of any commit), writing into OUT_DIR:
#
#   bash benchmarks/run_all_commands.sh SRC_TREE OUT_DIR [PYTHON]
#
# Two runs (before/after a change) are compared with benchmarks/compare_outputs.py plus
# `diff` of the evaluate / evaluate-raster CSVs and the make-samples hashes (docs/performance.md).
set -euo pipefail
SRC=$(cd "$1" && pwd); OUT=$2; PY=${3:-$(pwd)/.venv/bin/python}
SHARED=$(cd "$(dirname "$0")/../.." && pwd)/shared
rm -rf "$OUT"; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
export PYTHONPATH=$SRC GEOFLOODSAM_WEIGHTS_DIR=$SHARED/models GEOFLOODSAM_HOME=$OUT/home
G="$PY -m geofloodsam"
cd "$SRC"
T=$SRC/sample_tiles
$G segment $T/riverside_rgb.tif -p $T/riverside_rgb_prompts_4326.geojson -o $OUT/seg -q --threads 2
$G segment $T/delta_4band.tif -p $T/delta_4band_prompts_utm.geojson --bands 1,2,3 --save-prob -o $OUT/seg -q --threads 2
$G evaluate-raster $OUT/seg/riverside_rgb_mask.tif $T/riverside_rgb_truth.tif -o $OUT/er_river -q
$G evaluate-raster $OUT/seg/delta_4band_mask.tif $T/delta_4band_truth.tif -o $OUT/er_delta -q
$G make-samples $OUT/samples
$G evaluate --data $SHARED/data/flood-area-segmentation --split val --decoder pretrained --decoder flood --prompt point --prompt box --prompt none --examples 0 -o $OUT/eval -q --cache-dir $OUT/cache --device cpu
rm -rf $OUT/cache $OUT/home
echo DONE
