# Two commands for a new user:  `make submission`  and  `make test`.
# Both create the virtual environment on first use (see `install`).
VENV    ?= .venv
PY      := $(VENV)/bin/python
CLIC    := $(VENV)/bin/clic
OUT     ?= out
IMAGES  ?= data/kodak
# Latent-refinement steps per learned encode (models/refine.py; 0: off).  Encoder
# only: slower encoding, same decoder, e.g. `make submission REFINE=25`.
REFINE  ?= 0
# torch first, from the pinned release that pip finds on these machines (CPU
# works with it; on aarch64 use TORCH="torch==2.9.1 torchvision==0.24.1").
TORCH   ?= torch==2.14.1 torchvision==0.29.1
BASE    ?= python:3.11-slim
IMAGE   ?= clicpack:latest
DOCKER_BUILD_FLAGS ?=

.PHONY: deps install submission submission-2021 transparent test test-all bench lint docker-build docker-submission clean

# Dependencies first (torch, then pyproject's dependencies + dev extras), so
# that the Docker layer holding them does not depend on the project's code.
$(VENV)/.deps: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q $$($(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; o = p["optional-dependencies"]; print(" ".join(p["dependencies"] + o["dev"] + o["dask"]))')
	touch $@

$(VENV)/.installed: $(VENV)/.deps
	$(PY) -m pip install -q --no-deps -e .
	touch $@

deps: $(VENV)/.deps

install: $(VENV)/.installed

## The main job on the bundled Kodak set: three verified submissions, one
## leaderboard row each in $(OUT)/leaderboard.csv:
##   lowrate/      0.15 bpp, the default ladder (learned once trained)
##   hybrid/       0.15 bpp, learned + classical candidates mixed per image
##   transparent/  PSNR >= 40 dB and MS-SSIM >= 0.993 with the fewest bytes
##                 (the transparent ladder beside the classical one, once trained)
##   msssim/       0.15 bpp, the MS-SSIM ladder, maximising MS-SSIM
submission: install
	$(CLIC) submission --images $(IMAGES) --out $(OUT)/lowrate --refine $(REFINE) --leaderboard $(OUT)/leaderboard.csv
	$(CLIC) submission --images $(IMAGES) --out $(OUT)/hybrid --ladder hybrid --refine $(REFINE) --leaderboard $(OUT)/leaderboard.csv
	$(CLIC) submission --images $(IMAGES) --out $(OUT)/transparent --transparent --refine $(REFINE) --leaderboard $(OUT)/leaderboard.csv
	$(CLIC) submission --images $(IMAGES) --out $(OUT)/msssim --ladder msssim --objective msssim --refine $(REFINE) --leaderboard $(OUT)/leaderboard.csv

## CLIC 2021 onward: the three targets of one test set from one grid (the hybrid ladder's,
## which `make submission` has cached): clic2021/decoder.zip, clic2021/<target>bpp/data.zip
## (+ each target's submission/)
submission-2021: install
	$(CLIC) submission --images $(IMAGES) --out $(OUT)/clic2021 --ladder hybrid --bpp 0.075,0.15,0.3 --layout clic2021 --refine $(REFINE) --leaderboard $(OUT)/leaderboard.csv

test: install
	$(PY) -m pytest -q -m "not slow"

## Everything, the Docker round trip included (needs a Docker engine).
test-all: install
	$(PY) -m pytest -q

## Every benchmark, then docs/results.md from their pages: each page in bench/results/ is
## written by one line below (tests/test_bench_scripts.py checks that none is left out).
## bench_cross_machine reads the packages of `make submission` (out/*/submission);
## bench_submission runs its own.  Studies that fine-tune or read a training checkpoint
## run when their input is given: TRAIN_DATA=DIR (training images) and
## TRANSPARENT_CHECKPOINT=FILE (the transparent ladder's float32 checkpoint); PHOTOS=DIR (a
## folder of high-resolution validation photographs) adds them to the low-rate studies.  The
## training log (training_progress.*) gets a row from bench/training_progress.py after each
## training run.
bench: install
	$(PY) bench/bench_allocate.py
	$(PY) bench/bench_pipeline.py
	$(PY) bench/bench_models.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_decode_memory.py
	$(PY) bench/bench_weight_precision.py
	$(PY) bench/bench_weight_precision.py --ladder msssim --bits 8
	$(PY) bench/bench_integer_prior.py
	$(PY) bench/bench_refine.py --images 4 --points 3 --lr 0.002 0.01 --decay 1 0.93 --steps 10 25 50
	$(PY) bench/bench_refine.py --method sga --images 2 --points 4 --steps 100 300 1000 $(if $(PHOTOS),--photos $(PHOTOS) --photo-images 1)
	$(PY) bench/bench_avif_options.py
	$(PY) bench/bench_avif_options.py --low-rate $(if $(PHOTOS),--photos $(PHOTOS))
	$(PY) bench/bench_families.py
	$(PY) bench/choose_points.py --ladder psnr --rates 0 0.5 1 2 2.875 3 5 5.5 6 6.5 7 --keep 11
	$(PY) bench/choose_points.py --ladder msssim
	$(PY) bench/bench_dask.py --images 10 --repeats 2
	$(PY) bench/bench_msssim.py
	$(PY) bench/bench_submission.py --full-grid-too
	$(PY) bench/bench_cross_machine.py
ifdef TRAIN_DATA
	$(PY) bench/bench_options.py --data $(TRAIN_DATA)
	$(PY) bench/bench_options.py --data $(TRAIN_DATA) --variants baseline centres
	$(PY) bench/bench_options.py --data $(TRAIN_DATA) --variants baseline laplacian
endif
ifdef TRANSPARENT_CHECKPOINT
	$(PY) bench/bench_int8_sensitivity.py --ladder transparent --weights $(TRANSPARENT_CHECKPOINT)
	$(PY) bench/bench_weight_precision.py --ladder transparent --checkpoint $(TRANSPARENT_CHECKPOINT) --bits
endif
	$(PY) bench/results_page.py

lint: install
	$(VENV)/bin/hadolint Dockerfile

docker-build:
	mkdir -p build
	cp /etc/ssl/certs/ca-certificates.crt build/ca.crt 2>/dev/null || : > build/ca.crt
	docker build --network=host --build-arg BASE=$(BASE) $(DOCKER_BUILD_FLAGS) -t $(IMAGE) .

## Runs as the calling user (outputs are not root's) with the cache mounted, so that a
## killed container run resumes.
docker-submission: docker-build
	mkdir -p $(OUT)-docker cache-docker
	docker run --rm --network=host --user "$$(id -u):$$(id -g)" -e USER=clic -e HOME=/tmp \
		-v "$(CURDIR)/$(OUT)-docker:/out" -v "$(CURDIR)/cache-docker:/app/cache" $(IMAGE)

clean:
	rm -rf $(OUT) $(OUT)-docker build cache cache-docker
