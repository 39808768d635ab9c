# ARM templates (generated from deploy/vmsnapkit/arm/description.py) and the az-based scripts in deploy/scripts.
# `make templates` regenerates arm-templates/; tests/templates fails when the committed files are stale.

APT_PACKAGES += shellcheck
LINT_TARGETS += lint-scripts lint-templates

.PHONY: templates lint-scripts lint-templates

templates: venv
	$(PY) -m vmsnapkit.arm generate

# Schema + reviewer validation of every committed template and example parameters file.
lint-templates: venv
	$(PY) -m vmsnapkit.arm check
	$(PY) -m vmsnapkit.arm validate

lint-scripts:
	@if command -v shellcheck >/dev/null; then shellcheck -x deploy/scripts/*.sh && echo "shellcheck: clean"; \
	elif [ "$(IS_ROOT)" = yes ]; then echo "lint-scripts: shellcheck missing"; exit 1; \
	else echo "lint-scripts: shellcheck not installed (apt-deps installs it as root); skipped"; fi
