# Guest-agent compatibility (tests/agent): Debian's WALinuxAgent package, unpacked, never installed.
#
# `apt-get download waagent` + `dpkg -x` into $(KIT_CACHE)/waagent-<version>/: installing the package would
# run its maintainer scripts and start the walinuxagent service. Root only (apt-get update needs it on a
# fresh machine); without root the agent tests skip with a printed reason.
# The agent 2.7.3 imports distutils, so it runs on Python <= 3.11 (the test venv), plus `distro` (pyproject).
# Upstream 2.15.0.1 (the newest release) comes from the vendored tarball (../shared/vendor, never committed):
# `make waagent-upstream` unpacks it into $(KIT_CACHE)/WALinuxAgent-2.15.0.1/ (no root needed). It runs on
# Python 3.11 (the test venv, with `distro`) and on 3.13 from a small venv in the cache with `distro` and
# `crypt-r` from PyPI (`make agent-py313`, on pyenv's or the system's python3.13).
# tests/agent run the matrix (harness/guestagent.py agent_matrix); a missing combination skips with the reason.
# `make test-agent WAAGENT_DIR=<dir>` drives only that agent (an unpacked .deb or a source tree) instead.

WAAGENT_PACKAGE ?= waagent
WAAGENT_DEB_VERSION ?= 2.7.3.0-4.1
WAAGENT_UNPACKED := $(KIT_CACHE)/waagent-$(WAAGENT_DEB_VERSION)
# WAAGENT_DIR (unset by default) names another agent for tests/agent: an unpacked .deb or a source tree.

WAAGENT_UPSTREAM := WALinuxAgent-2.15.0.1
WAAGENT_UPSTREAM_TARBALL ?= $(VENDOR_DIR)/$(WAAGENT_UPSTREAM).tar.gz
AGENT_PY313_VENV := $(KIT_CACHE)/agent-py3.13

TEST_SETUP += waagent waagent-upstream agent-py313

.PHONY: waagent waagent-upstream agent-py313 test-agent

waagent: $(WAAGENT_UNPACKED)/.unpacked
# The pinned version first; if Debian replaced it, the current candidate, unpacked under its own version
# (tests/agent then finds it among $(KIT_CACHE)/waagent-*).
$(WAAGENT_UNPACKED)/.unpacked:
	@if [ "$(IS_ROOT)" != yes ]; then echo "waagent: not root, agent package not fetched (tests/agent will skip)"; exit 0; fi; \
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cd "$$tmp"; \
	want="$(WAAGENT_PACKAGE)=$(WAAGENT_DEB_VERSION)"; \
	apt-get download -qq "$$want" 2>/dev/null || { apt-get update -qq; apt-get download -qq "$$want" 2>/dev/null; } || \
	  { echo "waagent: $$want is gone from the archive, taking the current candidate"; \
	    apt-get download -qq "$(WAAGENT_PACKAGE)" 2>/dev/null; }; \
	deb=$$(ls "$$tmp"/$(WAAGENT_PACKAGE)_*.deb); \
	version=$$(dpkg-deb -f "$$deb" Version); dest="$(KIT_CACHE)/waagent-$$version"; \
	rm -rf "$$dest"; mkdir -p "$$dest"; \
	dpkg -x "$$deb" "$$dest"; \
	test -d "$$dest/usr/lib/python3/dist-packages/azurelinuxagent"; \
	touch "$$dest/.unpacked"; \
	echo "waagent: unpacked $$(basename $$deb) into $$dest"

waagent-upstream: $(KIT_CACHE)/$(WAAGENT_UPSTREAM)/.unpacked
$(KIT_CACHE)/$(WAAGENT_UPSTREAM)/.unpacked:
	@if [ ! -f "$(WAAGENT_UPSTREAM_TARBALL)" ]; then \
	  echo "waagent-upstream: no $(WAAGENT_UPSTREAM_TARBALL) (set VENDOR_DIR=); the 2.15 agent tests will skip"; exit 0; fi; \
	set -e; dest="$(KIT_CACHE)/$(WAAGENT_UPSTREAM)"; rm -rf "$$dest"; mkdir -p "$(KIT_CACHE)"; \
	tar -xzf "$(WAAGENT_UPSTREAM_TARBALL)" -C "$(KIT_CACHE)"; \
	test -f "$$dest/azurelinuxagent/common/version.py"; \
	touch "$$dest/.unpacked"; echo "waagent-upstream: unpacked $(WAAGENT_UPSTREAM_TARBALL) into $$dest"

# Python 3.13 for the 2.15 agent: pyenv's newest 3.13.x, else a working python3.13 on PATH (pyenv shims
# that refuse to run are skipped).
agent-py313: $(AGENT_PY313_VENV)/.stamp
$(AGENT_PY313_VENV)/.stamp:
	@py=; for c in $$(ls -d "$$(pyenv root 2>/dev/null || echo $(HOME)/.pyenv)"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV) \
	    $$(command -v python3.13); do "$$c" -c "" 2>/dev/null && { py=$$c; break; }; done; \
	if [ -z "$$py" ]; then echo "agent-py313: no Python 3.13 (pyenv or PATH); the 2.15-on-3.13 agent tests will skip"; exit 0; fi; \
	set -e; rm -rf "$(AGENT_PY313_VENV)"; "$$py" -m venv "$(AGENT_PY313_VENV)"; \
	"$(AGENT_PY313_VENV)/bin/python" -m pip install -q --disable-pip-version-check distro crypt-r || { \
	  rm -rf "$(AGENT_PY313_VENV)"; echo "agent-py313: pip could not install distro and crypt-r; the 2.15-on-3.13 agent tests will skip"; exit 0; }; \
	touch "$@"; echo "agent-py313: $(AGENT_PY313_VENV) on $$py"

# The agent installs the zip `make dist` built (dist/ holds exactly one); see tests/agent/conftest.py.
test test-agent: export AGENT_TEST_ZIP = $(CURDIR)/dist
test-agent: venv azurite waagent waagent-upstream agent-py313 dist
	$(if $(WAAGENT_DIR),WAAGENT_DIR=$(WAAGENT_DIR)) $(PY) -m pytest tests/agent $(PYTEST_ARGS)
