# Guest-agent compatibility (tests/agent): Debian's WALinuxAgent package, unpacked, never installed.
#
# `apt-get download waagent` + `dpkg -x` into $(KIT_CACHE)/waagent-<version>/: installing the package would
# run its maintainer scripts and start the walinuxagent service. Root only (apt-get update needs it on a
# fresh machine); without root the agent tests skip with a printed reason.
# The agent 2.7.3 imports distutils, so it runs on Python <= 3.11 (the test venv), plus `distro` (pyproject).
# `make test-agent WAAGENT_DIR=<dir>` drives another unpacked agent or an upstream source tree the same way;
# without it the tests take the newest $(KIT_CACHE)/waagent-*.

WAAGENT_PACKAGE ?= waagent
WAAGENT_DEB_VERSION ?= 2.7.3.0-4.1
WAAGENT_UNPACKED := $(KIT_CACHE)/waagent-$(WAAGENT_DEB_VERSION)
# WAAGENT_DIR (unset by default) names another agent for tests/agent: an unpacked .deb or a source tree.

TEST_SETUP += waagent

.PHONY: waagent test-agent

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

# The agent installs the zip `make dist` built (dist/ holds exactly one); see tests/agent/conftest.py.
test test-agent: export AGENT_TEST_ZIP = $(CURDIR)/dist
test-agent: venv azurite waagent dist
	$(if $(WAAGENT_DIR),WAAGENT_DIR=$(WAAGENT_DIR)) $(PY) -m pytest tests/agent $(PYTEST_ARGS)
