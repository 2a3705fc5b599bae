#!/usr/bin/env bash
# The GPU figures results/ still owes, as one prepared command that ends inside a 10-minute limit.
#
# A lent GPU machine has CUDA jax, flax, optax and chex but not brax or mujoco, and reaches no
# package index. So the wheels it lacks are fetched here first, then carried:
#
#     bash benchmarks/gpu_session.sh fetch       # here: .whl/ (about 34 MB, Python 3.12, x86_64)
#     bash benchmarks/gpu_session.sh run         # there, from the repository root, with .whl carried
#
# On a GPU machine that already has the project's dependencies, `run` alone does it (no .whl/: the
# installed packages are used).
#
# `run` installs the wheels into /tmp/site, then, in order of worth, each step capped by what is
# left of GPU_SESSION_BUDGET seconds (default 540) and skipped once too little is left (a physics
# variant needs 340 s left, 100 for itself and 240 kept for the Hopper run):
#   1. physics step latency of Brax's generalized hopper and of MJX, 8 envs, with XLA's command
#      buffers (CUDA graphs) off, at XLA's default, and with loops captured too (WHILE,CONDITIONAL):
#      results/physics_latency/gpu_cmdbuf_{off,default,loops}.*
#   2. the Hopper paper run, MBPO then SAC, GPU_SESSION_SEEDS seeds (default 8), the rest of the
#      budget split 60/40: results/hopper_paper_run/gpu_session.*
# Everything it writes goes into one archive, $OUT/gpu_session.tgz (the device returns at most 8
# files), beside $OUT/gpu_session.log; `tar -xzf gpu_session.tgz` in the repository root puts each
# file at its results/ path. GPU_SESSION_BUDGET, GPU_SESSION_SEEDS, GPU_SESSION_PHYSICS_STEPS
# (default 200), GPU_SESSION_BACKENDS (default generalized,mjx) and GPU_SESSION_SET (space-separated
# KEY=VALUE config overrides for the Hopper run) shrink it for a smoke run on a CPU.
set -uo pipefail
cd "$(dirname "$0")/.."

# what the GPU image lacks of the project's dependencies; the versions are constraints.txt's pins
WHEELS=(brax mujoco mujoco-core mujoco-studio mujoco-mjx jaxopt ml-collections tensorboardx trimesh
        flask flask-cors blinker itsdangerous glfw pyopengl websockets)

fetch() {
    local name pin pins=()
    for name in "${WHEELS[@]}"; do
        pin=$(grep -i -E "^${name//-/[-_]}==" constraints.txt) \
            || { echo "gpu_session: $name has no pin in constraints.txt" >&2; return 2; }
        pins+=("$pin")
    done
    mkdir -p .whl
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}" || return 2
    du -sh .whl
}

run() {
    local budget=${GPU_SESSION_BUDGET:-540} seeds=${GPU_SESSION_SEEDS:-8} steps=${GPU_SESSION_PHYSICS_STEPS:-200}
    local out=$1 start=$SECONDS wheels=${GPU_SESSION_WHEELS:-.whl}
    local stage sets=() kv; stage=$(mktemp -d)
    for kv in ${GPU_SESSION_SET:-}; do sets+=(--set "$kv"); done
    left() { echo $(( budget - (SECONDS - start) )); }
    if compgen -G "$wheels/*.whl" > /dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl \
            || { echo "gpu_session: the carried wheels did not install"; return 2; }
        export PYTHONPATH=/tmp/site:$PWD
    else
        export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONUNBUFFERED=1
    "$PY" -c "import jax, brax; print('jax', jax.__version__, 'brax', brax.__version__, jax.devices())" \
        || { echo "gpu_session: jax or brax does not import"; return 2; }
    command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv

    # 1. physics latency: command buffers off / default / loops captured (each a fresh process)
    local variant flags
    for variant in off default loops; do
        case $variant in
            off) flags="--xla_gpu_enable_command_buffer=" ;;
            default) flags="" ;;
            loops) flags="--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,WHILE,CONDITIONAL --xla_gpu_graph_min_graph_size=1" ;;
        esac
        if (( $(left) < 340 )); then echo "gpu_session: skipped physics latency ($variant): $(left) s left"; continue; fi
        echo "== physics latency, command buffers $variant (XLA_FLAGS='$flags'), $(left) s left"
        local cmd=(timeout 100 "$PY" benchmarks/physics_latency.py --env hopper
                   --backends "${GPU_SESSION_BACKENDS:-generalized,mjx}" --batch 8 --steps "$steps" --repeats 3
                   --out "$stage/results/physics_latency" --name "gpu_cmdbuf_$variant")
        local xf="${XLA_FLAGS:-}${flags:+ $flags}"
        xf=${xf# }                                    # XLA reads a blank XLA_FLAGS as a file name
        if [[ -n $xf ]]; then XLA_FLAGS="$xf" "${cmd[@]}"; else env -u XLA_FLAGS "${cmd[@]}"; fi \
            || echo "gpu_session: physics latency ($variant) failed or ran out of time"
    done

    # 2. the Hopper paper run, MBPO then SAC, in what is left (30 s kept for the archive)
    local rest=$(( $(left) - 30 ))
    local mbpo_s=$(( rest * 6 / 10 )) sac_s=$(( rest * 4 / 10 ))
    if (( rest >= 120 )); then
        echo "== Hopper paper run, $seeds seeds, mbpo $mbpo_s s + sac $sac_s s"
        timeout $(( rest + 20 )) "$PY" benchmarks/hopper_paper_run.py --algos mbpo,sac --seeds "$seeds" \
            --time-limit "$mbpo_s,$sac_s" --quiet "${sets[@]}" \
            --out "$stage/results/hopper_paper_run" --name gpu_session --runs "$stage/runs" \
            || echo "gpu_session: the Hopper run failed or ran out of time"
    else
        echo "gpu_session: skipped the Hopper run: $rest s left"
    fi
    tar -czf "$out/gpu_session.tgz" -C "$stage" results 2> /dev/null || echo "gpu_session: nothing to archive"
    echo "gpu_session: done in $(( SECONDS - start )) s; $out/gpu_session.tgz"
}

PY=${PYTHON:-python3}
case ${1:-} in
    fetch) fetch ;;
    run) out=${OUT:-/tmp/gpu_session_out}; mkdir -p "$out"; run "$out" 2>&1 | tee "$out/gpu_session.log" ;;
    *) echo "usage: bash benchmarks/gpu_session.sh fetch|run" >&2; exit 2 ;;
esac
