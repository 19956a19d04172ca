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

.PHONY: install test demo bench checkpoint checkpoint-push clean

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

# `make checkpoint [ROBOT=<preset>]`: exploration data of a simulated robot preset, then the shipped recipe
# (config/training/recipe.yaml) and the reach calibration, into checkpoints/<preset>. The embedded
# checkpoints/default was trained stage by stage with the same stage files (docs/checkpoint.md).
ROBOT ?= jepa_arm
CHECKPOINT_OUT ?= checkpoints/$(ROBOT)
DATA := data/$(ROBOT)
# VARY_SCENE=0.5 AUGMENT=--augment: half of the episodes in another light, colours and camera pose, and
# every training frame through its own camera changes (docs/own_robot.md: robust to the room). The shipped
# checkpoints were made without (the plain scene).
VARY_SCENE ?= 0
AUGMENT ?=

# A folder that exists is kept (remove it to collect again): smooth random walks, and a quarter as many
# jerky ones (the planner's candidate sequences are jerkier than a smooth walk).
$(DATA)/smooth: | install
	$(VENV)/bin/jepa-ros collect --robot $(ROBOT) --episodes 720 --steps 60 --seed 0 --image-size 128 \
		--vary-scene $(VARY_SCENE) --out $@
$(DATA)/jerky: | install
	$(VENV)/bin/jepa-ros collect --robot $(ROBOT) --episodes 240 --steps 60 --seed 1000 --smoothing 0.3 \
		--image-size 128 --vary-scene $(VARY_SCENE) --out $@

checkpoint: install $(DATA)/smooth $(DATA)/jerky
	# TRAIN_THREADS (2) BLAS threads: one run at a time on this 2-core CPU; where other work shares the
	# cores, TRAIN_THREADS=1 (two threads per process then slow training down severalfold)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(VENV)/bin/jepa-ros train --bags $(DATA)/smooth $(DATA)/jerky --robot $(ROBOT) \
		$(AUGMENT) --out runs/$(ROBOT) --seed 0 --export $(CHECKPOINT_OUT)
	# when the latent says "arrived" (stored in the checkpoint; the node holds the arm there)
	$(VENV)/bin/jepa-ros calibrate --checkpoint $(CHECKPOINT_OUT) --robot $(ROBOT)

# `make checkpoint-push [ROBOT=<preset>]`: random pushes of a block in the push scene (exploration only: no
# rewards, demonstrations or object labels), then the shipped recipe with planar actions (config/models/push.yaml),
# whose last stage also fits the arm-appearance model the planner compares push goals with, into
# checkpoints/push (ROBOT=jepa_arm) or checkpoints/<preset>_push.
PUSH_DATA := data/$(ROBOT)_push
PUSH_OUT ?= checkpoints/$(if $(filter jepa_arm,$(ROBOT)),push,$(ROBOT)_push)
$(PUSH_DATA): | install
	$(VENV)/bin/jepa-ros collect --robot $(ROBOT) --scene push --episodes 600 --steps 60 --seed 1 --image-size 128 \
		--out $@

checkpoint-push: install $(PUSH_DATA)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(VENV)/bin/jepa-ros train --bags $(PUSH_DATA) --robot $(ROBOT) \
		--model-config config/models/push.yaml --config config/training/push_recipe.yaml --out runs/$(ROBOT)_push \
		--seed 0 --export $(PUSH_OUT)

clean:
	rm -rf $(VENV) build install log reports runs
