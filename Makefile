# The two commands: `make demo` and `make test`. Both create or reuse .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0
TRAIN_THREADS ?= 2
ROS_WHEELS := ros-rclpy ros-rmw-fastrtps-cpp ros-sensor-msgs ros-std-msgs ros-geometry-msgs \
	ros-trajectory-msgs ros-std-srvs ros-rosgraph-msgs ros-builtin-interfaces ros-diagnostic-msgs

# DDS discovery stays on loopback (Fast DDS would otherwise multicast out of the network interface of a
# shared machine; on a robot network unset it); MuJoCo renders offscreen.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install test demo bench checkpoint clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.py package.xml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# the pinned CPU torch first: an open range would pull a multi-GB CUDA build
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PY) -c "import rclpy" 2>/dev/null || $(PIP) install -q $(ROS_WHEELS)
	$(PIP) install -q -e '.[test]'
	touch $@

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q test

demo: install
	$(VENV)/bin/jepa-ros demo --out reports/demo

bench: install
	for b in sim world_model planner closed_loop evaluate fuzz; do $(PY) benchmarks/$$b.py || exit 1; done

# The exploration data of `make checkpoint`; a folder that exists is kept (remove it to collect again).
data/explore128: | install
	$(VENV)/bin/jepa-ros collect --episodes 120 --steps 60 --seed 0 --image-size 128 --out $@
# a second set with little smoothing: the planner's candidate sequences are jerkier than a smooth walk
data/explore128_jerky: | install
	$(VENV)/bin/jepa-ros collect --episodes 120 --steps 60 --seed 1000 --smoothing 0.3 --image-size 128 --out $@
# a third set: more frames for the joint readout and the predictor-only stage (both over-fit two sets)
data/explore128_predictor: | install
	$(VENV)/bin/jepa-ros collect --episodes 240 --steps 60 --seed 2000 --image-size 128 --out $@
# a fourth for the joint readout alone: the tool roll is read from a few pixels and needs many frames
data/explore128_extra: | install
	$(VENV)/bin/jepa-ros collect --episodes 480 --steps 60 --seed 3000 --image-size 128 --out $@

# Reproduces the embedded default checkpoint (see README and docs/checkpoint.md).
checkpoint: install data/explore128 data/explore128_jerky data/explore128_predictor data/explore128_extra
	# TRAIN_THREADS (2) BLAS threads: one run at a time on this 2-core CPU; where other work shares the
	# cores, TRAIN_THREADS=1 (two threads per process then slow training down severalfold)
	# first stage: the encoder alone learns to read the joint positions linearly (config/training/proprio.yaml)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(VENV)/bin/jepa-ros train \
		--bags data/explore128 data/explore128_jerky data/explore128_predictor data/explore128_extra \
		--config config/training/proprio.yaml --out runs/proprio --seed 0 --robot jepa_arm
	# second stage: encoder and predictor, inverse dynamics and a smooth latent (config/training/joint.yaml)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(VENV)/bin/jepa-ros train --bags data/explore128 data/explore128_jerky \
		--config config/training/joint.yaml --init runs/proprio/checkpoint --out runs/joint --seed 0 --robot jepa_arm
	# third stage: that latent fixed, the predictor alone trains on (config/training/predictor.yaml)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(VENV)/bin/jepa-ros train --bags data/explore128 data/explore128_jerky data/explore128_predictor \
		--config config/training/predictor.yaml --init runs/joint/checkpoint --out runs/default --seed 0 --robot jepa_arm \
		--export checkpoints/default

clean:
	rm -rf $(VENV) build install log reports runs
