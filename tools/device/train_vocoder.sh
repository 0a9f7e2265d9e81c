#!/bin/bash
# Issue 4's vocoder on the lent GPU, in one device call. Here first: `python tools/device/pack.py`
# (writes .device/: the wheels the device image lacks and the train clips as FLAC). Then:
#   run(command="bash tools/device/train_vocoder.sh 480", carry=[".device"], timeout_s=570)
# It trains CONFIG (the second argument; default configs/vocoder-gla-vocos-gpu.json, the magnitude
# vocoder at Vocos' width: the network-phase configs/vocoder-istft-vocos-gpu.json ran in session 21,
# BENCHMARKS.md) for SECONDS (default 420): the config's step count is
# out of reach, so the time limit ends the run; its SIGTERM makes the trainer checkpoint first, and
# the lr is constant after warm-up (a schedule would need the step count the GPU reaches, unknown
# beforehand), the EMA weights being what is exported. It exports to $OUT/vocoder and returns the
# log and metrics (the model as tar parts: see the end). Back
# here, measure it against Griffin-Lim on the held-out test clips (docs/models.md, `bench codec`).
set -uo pipefail
seconds=${1:-420}
config=${2:-configs/vocoder-gla-vocos-gpu.json}
python3 -m pip install -q --no-deps --no-index --target .device/site .device/wheels/*.whl || exit 1
export PYTHONPATH=$PWD/src:$PWD/.device/site PYTHONUNBUFFERED=1 FOLEYFLOW_HOME=$PWD/.device/home
python3 -c "import foleyflow.models.vocoder, foleyflow.training.trainer" || exit 1  # fail in seconds, not after the wait
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1  # TF32 matmuls: the convolutions already use TF32 by default
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout "$seconds" python3 -m foleyflow train vocoder --config "$config" --out .device/run > "$OUT/train.log" 2>&1
echo "$config: train exit $? after at most $seconds s (124: stopped by the time limit, as planned)"
python3 -m foleyflow train export .device/run --out .device/vocoder || exit 1
cp .device/run/metrics.jsonl "$OUT/" 2>/dev/null
# Files come back at most 16 MiB each (the fp32 weights are about 50 MiB): one tar in 15 MiB parts.
# Here: cat vocoder.tar.part-* | tar -x -C FOLDER
tar -C .device -cf - vocoder | split -b 15M - "$OUT/vocoder.tar.part-" && ls -la "$OUT"
tail -c 1500 "$OUT/train.log"
