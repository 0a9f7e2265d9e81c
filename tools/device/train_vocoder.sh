#!/bin/bash
# Issue 4's vocoder on the lent GPU, in one device call. Here first: `python tools/device/pack.py`
# (writes .device/: the wheels the device image lacks and the train clips as FLAC). Then:
#   run(command="bash tools/device/train_vocoder.sh 420", carry=[".device"], timeout_s=540)
# It trains configs/vocoder-istft-vocos-gpu.json for at most SECONDS (default 420; a checkpoint every
# 500 steps), exports the latest checkpoint to $OUT/vocoder and returns the log and metrics. Back
# here, measure it against Griffin-Lim on the held-out test clips (docs/models.md, `bench codec`).
set -uo pipefail
seconds=${1:-420}
python3 -m pip install -q --no-deps --no-index --target .device/site .device/wheels/*.whl || exit 1
export PYTHONPATH=$PWD/src:$PWD/.device/site PYTHONUNBUFFERED=1 FOLEYFLOW_HOME=$PWD/.device/home
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout "$seconds" python3 -m foleyflow train vocoder --config configs/vocoder-istft-vocos-gpu.json --out .device/run > "$OUT/train.log" 2>&1
echo "train exit $? after at most $seconds s (124: stopped by the time limit, as planned)"
python3 -m foleyflow train export .device/run --out "$OUT/vocoder" && ls -la "$OUT/vocoder"
cp .device/run/metrics.jsonl "$OUT/" 2>/dev/null
tail -c 1500 "$OUT/train.log"
