#!/usr/bin/env bash
# The checks that need a GPU, in one command on a lent GPU machine (bench/README.md, "On a GPU").
#
#   bash bench/gpu_checks.sh [env] [tests] [cwt] [diffusion] [scale-smoke] [scale ROWS...]   (default: env tests)
#
# The machine's image has PyTorch (CUDA) but not every dependency of wavefin_core: wheels for the missing ones
# (diffusers, importlib_metadata, PyWavelets, arch, pyFFTW; cp312) travel in ./.whl (git-ignored) and are
# installed into /tmp/site first. Logs and JSON results go to $OUT (default /tmp/wavefin-gpu).
set -uo pipefail
OUT=${OUT:-/tmp/wavefin-gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
fi
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(env tests)
status=0
i=0
while [ $i -lt ${#parts[@]} ]; do
    part=${parts[$i]}
    i=$((i + 1))
    echo "=== $part ($(date -u +%H:%M:%S))"
    case $part in
    env)
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
        python3 -c "import sys, torch, numpy, pandas, pyarrow, scipy, diffusers, pywt, arch, sklearn, statsmodels
print('python', sys.version.split()[0], '| torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA')
print(' | '.join(f'{m.__name__} {m.__version__}' for m in (numpy, pandas, pyarrow, scipy, diffusers, pywt, arch,
                                                          sklearn, statsmodels)))" || status=1 ;;
    tests)  # the core's tests (tests/core; the Dagster layer is not installed here), CUDA tests included
        python3 -m pytest -q -p no:cacheprovider -n 8 tests/core --ignore=tests/core/test_chunked_assets.py \
            -rs 2>&1 | tee "$OUT/tests.log" | tail -25 || status=1 ;;
    cwt)
        python3 bench/bench_cwt.py --quick 2>&1 | tee "$OUT/bench_cwt.log" | tail -30 || status=1 ;;
    diffusion)
        python3 bench/bench_diffusion.py --quick 2>&1 | tee "$OUT/bench_diffusion.log" | tail -40 || status=1 ;;
    scale-smoke)  # every row of the scale ladder for 20 steps: the CUDA path end to end, and its step times
        python3 bench/bench_generation_ablation.py --ladder scale --quick --device cuda \
            --out "$OUT/scale_smoke.json" 2>&1 | tee "$OUT/scale_smoke.log" | tail -30 || status=1 ;;
    scale)  # the rest of the arguments are row names of the scale ladder
        rows=("${parts[@]:$i}")
        i=${#parts[@]}
        python3 bench/bench_generation_ablation.py --ladder scale --device cuda --levers "${rows[@]}" \
            --profile "${SCALE_PROFILE:-quick}" \
            --out "$OUT/ablation_scale.json" 2>&1 | tee "$OUT/scale.log" | tail -40 || status=1 ;;
    scale-parallel)  # every row of the scale ladder in its own process, all at once on the one GPU (the small
        # UNets are launch-bound, so processes overlap), and the references in one more. SCALE_PROFILE=full: the
        # full profile's data and window; SCALE_ROWS=TEXT: only the rows whose name contains TEXT. Merge here
        # afterwards: bench_generation_ablation.py --ladder scale --merge scale_references.json scale_part_*.json
        mapfile -t rows < <(python3 - <<'PY'
import os, sys
sys.path.insert(0, "bench")
import bench_generation_ablation as b
print("\n".join(lever.name for lever in b.scale_ladder() if os.environ.get("SCALE_ROWS", "") in lever.name))
PY
)
        pids=()
        timeout "${SCALE_TIMEOUT:-560}" python3 bench/bench_generation_ablation.py --ladder scale --only-references \
            --profile "${SCALE_PROFILE:-quick}" --threads 2 --out "$OUT/scale_references.json" \
            >/tmp/scale_references.log 2>&1 &
        pids+=($!)
        for n in "${!rows[@]}"; do
            refs=(--no-references)
            timeout "${SCALE_TIMEOUT:-560}" python3 bench/bench_generation_ablation.py --ladder scale --device cuda \
                --profile "${SCALE_PROFILE:-quick}" --threads 2 --levers "${rows[$n]}" "${refs[@]}" --out "$OUT/scale_part_$n.json" \
                >"/tmp/scale_part_$n.log" 2>&1 &
            pids+=($!)
        done
        for pid in "${pids[@]}"; do wait "$pid" || status=1; done
        for n in "${!rows[@]}"; do echo "--- ${rows[$n]}"; tail -8 "/tmp/scale_part_$n.log"; done \
            | tee "$OUT/scale_parallel.log"
        tail -8 /tmp/scale_references.log | tee -a "$OUT/scale_parallel.log" ;;
    *)
        echo "unknown part $part (env tests cwt diffusion scale-smoke scale-parallel scale ROWS...)"
        status=2 ;;
    esac
done
exit $status
