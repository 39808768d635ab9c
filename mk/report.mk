# The fleet report as a browser shows it (tests/mgmt/test_report_browser.py, bench/fleet_report.py): Debian's
# chromium, driven headless over the DevTools protocol (websocket-client comes with the venv's test extra), and a
# CJK font so zh-CN reports and their screenshots show Chinese rather than boxes. Installed by apt-deps as root;
# without root the browser tests skip with a printed reason.

APT_PACKAGES += chromium fonts-wqy-microhei

.PHONY: bench-report report-screenshot

# JSON: the HTML report's size and render time in headless Chromium at 1,000 and 10,000 VMs.
bench-report: venv
	$(PY) bench/fleet_report.py

# The picture in docs/: a 60-VM report from the emulator, first screen.
report-screenshot: venv
	$(PY) -m harness.report_page --vms 60 --out out/fleet-report-60.html --screenshot docs/fleet-report.png
