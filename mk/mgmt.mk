# Fleet tooling (deploy/vmsnapkit) and the loopback ARM emulator (harness/armemu).
# Everything they need comes with `make venv` (pyproject dependencies); the tests in tests/mgmt need no
# extra set-up. The benchmark's per-VM az loop uses the az CLI venv of mk/azcli.mk when present.

.PHONY: bench-fleet fleet-demo

# JSON figures for docs/mgmt.md: verify on 1,000 and 10,000 VMs at 20 ms, Resource Graph and direct ARM,
# and the serial `az vm extension list` loop on 100 VMs (extrapolated).
bench-fleet: venv
	$(PY) bench/fleet_verify.py --budget

# The fleet part of the `make run` story: emulator + vmsnapkit + an HTML report in out/.
fleet-demo: venv
	$(PY) -m harness.fleet_demo
