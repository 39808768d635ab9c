# The real az CLI, for the templates/scripts tests and benchmarks (and reusable by the fleet tooling tests).
# azure-cli pins its own SDK versions, so it lives in its own virtualenv in $(KIT_CACHE), apart from .venv.
# Tests find it through AZ_CLI (exported here); they skip with a printed reason when it is missing.

AZCLI_VERSION ?= 2.91.0
AZCLI_VENV := $(KIT_CACHE)/azcli
AZ_CLI := $(AZCLI_VENV)/bin/az
export AZ_CLI

TEST_SETUP += setup-azcli

.PHONY: setup-azcli
setup-azcli: $(AZCLI_VENV)/.stamp-$(AZCLI_VERSION)
$(AZCLI_VENV)/.stamp-$(AZCLI_VERSION):
	rm -rf $(AZCLI_VENV)
	$(BOOT_PYTHON) -m venv $(AZCLI_VENV)
	$(AZCLI_VENV)/bin/python -m pip install -q --upgrade pip
	$(AZCLI_VENV)/bin/python -m pip install -q azure-cli==$(AZCLI_VERSION)
	AZURE_CONFIG_DIR=$$(mktemp -d) AZURE_CORE_COLLECT_TELEMETRY=no $(AZ_CLI) version >/dev/null
	touch $@
