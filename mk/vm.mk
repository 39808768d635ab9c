# qemu system test (issue 8): a cached Debian bookworm guest booted under software emulation.
# `make vm-image` builds it once under $(KIT_CACHE)/vm (debootstrap + kernel, about 2-3 minutes), keyed
# on a stamp of the recipe in harness/guest_image.py; re-running it with an unchanged recipe is a no-op.
# Root only: without root it prints why it skipped, and tests/system skips with the same reason.

# socat relays each guest connection of qemu's guestfwd to Azurite on loopback.
APT_PACKAGES += debootstrap qemu-system-x86 qemu-utils socat
TEST_SETUP += vm-image
VM_CACHE := $(KIT_CACHE)/vm

.PHONY: vm-image vm-image-rebuild test-system

vm-image: apt-deps venv
	@$(PY) -m harness.guest_image --cache $(VM_CACHE)

vm-image-rebuild: apt-deps venv
	@$(PY) -m harness.guest_image --cache $(VM_CACHE) --force

# Just the qemu system test (one boot, about a minute), with its figures printed.
test-system: vm-image azurite
	$(PY) -m pytest -s tests/system $(PYTEST_ARGS)
