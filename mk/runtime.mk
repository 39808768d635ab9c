# In-guest runtime (issues 2 and 3): its tests need only the common set-up (venv, Azurite, openssl and the
# mkfs tools for the root-only freeze jobs). Benchmarks print JSON.
.PHONY: test-runtime bench-runtime

test-runtime: venv azurite apt-deps
	$(PY) -m pytest -q tests/runtime tests/harness $(PYTEST_ARGS)

# enable -> terminal status latency, worker RSS/CPU; frozen window vs disks and RTT (root only); the host
# path's frozen window vs its floor (root only); the guest snapshot phase vs a minimal select client.
bench-runtime: venv azurite apt-deps
	$(PY) bench/enable_latency.py --python /usr/bin/python3
	$(PY) bench/frozen_window.py
	$(PY) bench/host_window.py
	$(PY) bench/guest_snapshot.py
