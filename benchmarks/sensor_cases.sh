#!/bin/bash
# The sensor cases of docs/sensors.md: `segment` through every sensor's path (detection,
# composite, water index, `--method auto`, default decoders), to compare two versions' outputs.
#
#   benchmarks/sensor_cases.sh run OUTDIR        # every case into OUTDIR/<case>/
#   benchmarks/sensor_cases.sh compare DIR_A DIR_B
#
# `run` uses $PYTHON (default python) with the environment as it is (PYTHONPATH,
# GEOFLOODSAM_WEIGHTS_DIR); the shared data is $GEOFLOODSAM_SHARED/data (default ../shared
# beside the repository). The plain-RGB input (bands 1-3 of a NAIP tile) and its point prompt
# are written to $SENSOR_CASES_INPUTS (default /tmp/geofloodsam-sensor-cases), the same place
# for both versions, since run.json records input paths. `compare` runs
# benchmarks/compare_outputs.py (masks byte for byte, polygons) and compares every run.json
# without its times (created, timings, *_s, seconds); exit 1 on any difference.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PYTHON=${PYTHON:-python}
if [ "${1:-}" = compare ]; then
    rc=0
    "$PYTHON" "$HERE/compare_outputs.py" "$2" "$3" || rc=1
    "$PYTHON" - "$2" "$3" <<'PY' || rc=1
import json, sys
from pathlib import Path

def timeless(x):
    if isinstance(x, dict):
        return {k: timeless(v) for k, v in x.items()
                if k not in ("created", "timings", "seconds") and not k.endswith("_s")}
    return [timeless(v) for v in x] if isinstance(x, list) else x

a, b = Path(sys.argv[1]), Path(sys.argv[2])
ok = True
for ra in sorted(a.rglob("*_run.json")):
    rb = b / ra.relative_to(a)
    same = rb.exists() and timeless(json.loads(ra.read_text())) == timeless(json.loads(rb.read_text()))
    ok &= same
    print(f"{'same' if same else 'DIFFERENT'}  {ra.relative_to(a)}")
sys.exit(0 if ok else 1)
PY
    exit $rc
fi
[ "${1:-}" = run ] || { echo "usage: $0 run OUTDIR | compare DIR_A DIR_B" >&2; exit 2; }
OUT=$2
DATA=${GEOFLOODSAM_SHARED:-$REPO/../shared}/data
INPUTS=${SENSOR_CASES_INPUTS:-/tmp/geofloodsam-sensor-cases}
S1=$DATA/sen1floods11/S1Hand/Bolivia_312675_S1Hand.tif
S2=$DATA/sen1floods11/S2Hand/Spain_7370579_S2Hand.tif
NAIP=$DATA/geo/naip-north-dakota/m_4709963_se_14_1_20140720.tif
mkdir -p "$INPUTS"
"$PYTHON" - "$NAIP" "$INPUTS" <<'PY'
import json, sys
import numpy as np
import rasterio

src, out = sys.argv[1], sys.argv[2]
with rasterio.open(src) as ds:
    a = ds.read().astype(float)
    ndwi = (a[1] - a[3]) / (a[1] + a[3] + 1e-9)
    r, c = np.unravel_index(np.argmax(ndwi), ndwi.shape)
    x, y = ds.xy(r, c)
    profile = {**ds.profile, "count": 3}
    with rasterio.open(f"{out}/naip_rgb.tif", "w", **profile) as dst:
        dst.write(ds.read([1, 2, 3]))
point = {"type": "Feature", "properties": {"label": 1},
         "geometry": {"type": "Point", "coordinates": [x, y]}}
with open(f"{out}/point.geojson", "w") as f:
    json.dump({"type": "FeatureCollection", "crs": {"type": "name", "properties": {
        "name": "urn:ogc:def:crs:EPSG::26914"}}, "features": [point]}, f)
PY
seg() { "$PYTHON" -m geofloodsam segment "$@" -q; }
seg "$S1" -o "$OUT/s1_auto"
seg "$S2" -o "$OUT/s2_auto"
seg "$NAIP" -o "$OUT/naip_auto"
seg "$REPO/sample_tiles/delta_4band.tif" -o "$OUT/delta_auto"
seg "$S1" -o "$OUT/s1_fused" --method fused
seg "$S2" -o "$OUT/s2_fused" --method fused
seg "$NAIP" -o "$OUT/naip_sam" --method sam
seg "$INPUTS/naip_rgb.tif" -o "$OUT/rgb_auto"
seg "$INPUTS/naip_rgb.tif" --prompts "$INPUTS/point.geojson" -o "$OUT/rgb_prompted"
seg "$S1" --sensor sar -o "$OUT/s1_as_sar"
