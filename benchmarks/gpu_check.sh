#!/usr/bin/env bash
# One short prepared run on a CUDA machine (the device tool's H200), from the repo root:
#   CUDA tests (incl. GPU JPEG decoding: pixel and score differences vs the CPU path),
#   GPU throughput with GPU decoding (score vs encoder ceiling at batch 32, with --compile,
#   12 MP JPEGs) and the same without it, tar shards vs files, torchrun on the GPU.
# Needs: wheels for packages the machine lacks in .whl/ (open_clip_torch, ftfy, wcwidth, typer,
# pydantic and what they need)
# and LIVEC photos in .bench/livec (with its README.txt licence; never committed).
set -uo pipefail
OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD:/tmp/site"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
python3 -m pip list 2>/dev/null | grep -iE "^(timm|huggingface.hub|pillow|numpy|safetensors|scipy) "
python3 -c "import torch, open_clip, typer, huggingface_hub as h; print('torch', torch.__version__, \
'cuda', torch.cuda.is_available(), 'open_clip', open_clip.__version__, 'typer', typer.__version__, \
'hf', h.__version__)"

echo "::: CUDA tests"
python3 -m pytest -q -s -p no:cacheprovider tests/test_cuda.py tests/test_gpu_decode.py \
  tests/test_model.py tests/test_scale.py 2>&1 | tee "$OUT/cuda_tests.txt" \
  | grep -E "GPU vs CPU|passed|failed|Error" | tail -n 25

echo "::: throughput, batch 32, JPEGs decoded on the GPU (nvJPEG + exact squash)"
python3 benchmarks/throughput.py --device cuda --images 627 --repeat 8 --big-images 128 --batch-size 32 \
  --gpu-decode on --livec .bench/livec/images --workdir /tmp/bench --skip memory startup \
  --json "$OUT/gpu_b32.json" 2>&1 | tail -n 20

echo "::: throughput, batch 32, CPU decoding (16 workers), for comparison"
python3 benchmarks/throughput.py --device cuda --images 627 --repeat 4 --big-images 64 --batch-size 32 \
  --gpu-decode off --livec .bench/livec/images --workdir /tmp/bench --skip memory startup compile \
  --json "$OUT/gpu_b32_cpu_decode.json" 2>&1 | tail -n 20

echo "::: tar shards vs files on the GPU (ViT-B-16 random weights, GPU decoding)"
python3 benchmarks/tar_input.py --device cuda --model vit-b16 --workers 8 --repeat 2 \
  --livec .bench/livec/images --workdir /tmp/bench-tar 2>&1 | tee "$OUT/tar_gpu.txt" | tail -n 6

echo "::: throughput, batch 256"
python3 benchmarks/throughput.py --device cuda --images 627 --repeat 8 --batch-size 256 \
  --livec .bench/livec/images --workdir /tmp/bench --skip big memory startup compile \
  --json "$OUT/gpu_b256.json" 2>&1 | tail -n 8

echo "::: torchrun, 2 ranks on the GPU"
HF_HUB_CACHE=/tmp/bench/hf HF_HUB_OFFLINE=1 GRMPIQA_CACHE=/tmp/bench/grmpiqa-cache \
  python3 -m torch.distributed.run --standalone --nproc_per_node=2 -m grmpiqa score \
  .bench/livec/images -q -o "$OUT/torchrun.csv" -b 64 2>&1 | tail -n 5
echo "rows: $(($(wc -l < "$OUT/torchrun.csv") - 1))"
