# Freeze engine (issue 3): mount plan, freeze guardian, pre/post scripts.
# Its root-only tests use real loop-mounted ext4, xfs and btrfs images: mkfs tools, losetup, mount and
# fsfreeze (the independent thaw watchdog). Without root they skip with a printed reason.
APT_PACKAGES += xfsprogs btrfs-progs util-linux e2fsprogs mount

.PHONY: test-engine bench-engine

# The engine's tests alone (about 20-30 s as root).
test-engine: venv apt-deps
	$(PY) -m pytest -q tests/engine $(PYTEST_ARGS)

# Freeze/thaw/stall figures on loop filesystems, as JSON (root only).
bench-engine: venv apt-deps
	$(PY) bench/freeze_engine.py $(BENCH_ARGS)
