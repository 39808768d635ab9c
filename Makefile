# VM Snapshot Linux extension kit.
# The README names two commands: `make run` (the main job) and `make test` (the tests).
# Everything they need is installed from here: a virtualenv in .venv, npm and Debian packages (Node.js and
# npm themselves from Debian when missing, mk/azurite.sh), and downloads cached in $(KIT_CACHE), outside
# the repository.
# Each area of the kit adds its own set-up steps and test prerequisites in mk/<area>.mk.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

KIT_CACHE ?= $(HOME)/.cache/vmsnapshot-kit
export KIT_CACHE
BOOT_PYTHON ?= python3
VENV ?= .venv
PY := $(CURDIR)/$(VENV)/bin/python
VERSION := $(shell cat VERSION)
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

# Real tools the registries lack (the guest agent 2.15, fpm), beside the clone; unpacked into $(KIT_CACHE).
VENDOR_DIR ?= $(abspath $(CURDIR)/../shared/vendor)

AZURITE_VERSION := 3.35.0
AZURITE_DIR := $(KIT_CACHE)/azurite-$(AZURITE_VERSION)
AZURITE_MAIN := $(AZURITE_DIR)/node_modules/azurite/dist/src/blob/main.js
export AZURITE_MAIN

# Debian packages installed (as root) when missing; fragments append to this list.
APT_PACKAGES := openssl xfsprogs btrfs-progs util-linux e2fsprogs
# Targets `make test` and `make run` depend on; fragments append to these lists.
TEST_SETUP := venv azurite apt-deps
RUN_SETUP := venv azurite apt-deps
# Extra static checks run by `make test`; fragments append.
LINT_TARGETS := lint-runtime lint-tooling

include $(sort $(wildcard mk/*.mk))

.PHONY: help run test venv azurite apt-deps lint lint-runtime lint-tooling clean

help:
	@echo "make run    run the main job: a local end-to-end snapshot job on embedded defaults"
	@echo "make test   install what the tests need, then run every check and test"

venv: $(VENV)/.stamp
$(VENV)/.stamp: pyproject.toml VERSION
	$(BOOT_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# npm install into the cache; node and npm, when missing, are the distribution's (installed as root).
azurite: $(AZURITE_MAIN)
$(AZURITE_MAIN):
	sh mk/azurite.sh $(AZURITE_DIR) $(AZURITE_VERSION)

apt-deps:
	@if [ "$(IS_ROOT)" != yes ]; then echo "apt-deps: not root, Debian packages not installed (root-only tests will skip)"; exit 0; fi; \
	missing=""; for p in $(sort $(APT_PACKAGES)); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt="apt-get -o DPkg::Lock::Timeout=600"; \
	  $$apt update -qq && $$apt install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(LINT_TARGETS)

# The runtime must run on Python 3.6 (RHEL 8's platform-python) with the standard library only.
lint-runtime: venv
	$(VENV)/bin/vermin --target=3.6- --violations --no-tips --quiet extension/vmsnapshot
	$(VENV)/bin/ruff check extension
	$(VENV)/bin/ruff format --check extension

# ruff check and ruff format --check, with the tree's one configuration: pyproject.toml's [tool.ruff]
# (extension/ruff.toml extends it with the runtime's target version).
lint-tooling: venv
	$(VENV)/bin/ruff check --exclude extension .
	$(VENV)/bin/ruff format --check --exclude extension .

test: $(TEST_SETUP)
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest $(PYTEST_ARGS)

run: $(RUN_SETUP)
	$(PY) demo/run.py

clean:
	rm -rf dist build .pytest_cache
