#!/usr/bin/env bash
# Train a ladder's network on a lent GPU machine (the `device` tool) in one call.
#
# The machine has torch but not compressai or pytorch-msssim, and no ../shared:
# `prepare` (here, once per checkout) fetches those two wheels for its Python
# 3.12 into .whl/ and copies the 680 training images into .train_pack/ (both
# git-ignored through .git/info/exclude; with the tracked tree that is ~61 MB
# of the 64 MiB a call carries).  `train` (there) installs the wheels when
# compressai is missing, trains for MINUTES on the GPU, and leaves the float16
# export (every 2 minutes, so a call cut short still returns one) and the
# training log in $OUT.
#
#   here:   bash tools/device_train.sh prepare
#   there:  run(command="bash tools/device_train.sh train psnr 8 --init models/weights/psnr.safetensors",
#               carry=[".whl", ".train_pack"], timeout_s=600)
#   here:   cp FILES_AT/psnr.safetensors models/weights/   (then bench/choose_points.py, make submission)
#
# Extra arguments go to `clic train` and override the defaults below (the last
# value of an option wins).  DEVICE=cpu, DATA=folder, RUN_DIR=folder and PYTHON=...
# run `train` anywhere (the tests do).
set -euo pipefail
PYTHON=${PYTHON:-python3}

case "${1:-}" in
prepare)
    shared=${SHARED:-../shared}
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    grep -qx '/.train_pack/' .git/info/exclude 2>/dev/null || echo '/.train_pack/' >>.git/info/exclude
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_34_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl compressai==1.2.8 pytorch-msssim==1.0.0
    rm -rf .train_pack && cp -r "$shared/datasets/train_pack" .train_pack
    du -sh .whl .train_pack
    ;;
train)
    [ $# -ge 3 ] || { echo "usage: $0 train LADDER MINUTES [clic train options]" >&2; exit 2; }
    ladder=$2 minutes=$3
    shift 3
    : "${OUT:?OUT (the folder whose files come back) is not set}"
    if ! "$PYTHON" -c "import compressai, pytorch_msssim" 2>/dev/null; then
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
    run=${RUN_DIR:-/tmp/run-$ladder}
    status=0
    "$PYTHON" -m pipeline train --ladder "$ladder" --data "${DATA:-.train_pack}" --device "${DEVICE:-cuda}" \
        --minutes "$minutes" --batch 16 --crop 256 --checkpoint-minutes 2 --steps 10000000 \
        --out "$run" --export "$OUT/$ladder.safetensors" "$@" || status=$?
    cp "$run/train.log" "$OUT/train.log" 2>/dev/null || true
    exit $status
    ;;
*)
    echo "usage: $0 prepare | train LADDER MINUTES [clic train options]" >&2
    exit 2
    ;;
esac
