# Database workloads (issue 13): real PostgreSQL and MariaDB servers from Debian, quiesced by the runtime's
# database branch and restored from images copied inside the frozen window (tests/databases, root only).
#
# The packages are installed WITHOUT starting their system services: the tests start their own servers on
# loop-mounted file systems, on local sockets only. A policy-rc.d that answers 101 ("action forbidden") is put
# in place for the install when the machine has none (containers usually have one), and any service the
# packages started anyway is stopped afterwards. Without root: skipped with a printed reason (the database
# tests skip too).

DB_PACKAGES := postgresql postgresql-contrib postgresql-client mariadb-server mariadb-client
TEST_SETUP += db-servers

.PHONY: db-servers test-databases bench-databases

db-servers:
	@if [ "$(IS_ROOT)" != yes ]; then echo "db-servers: not root, PostgreSQL and MariaDB not installed (tests/databases will skip)"; exit 0; fi; \
	missing=""; for p in $(DB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	echo "db-servers: installing$$missing (system services not started)"; \
	own_policy=""; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=yes; \
	fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing >/dev/null || \
	  { apt-get update -qq -o DPkg::Lock::Timeout=600 && \
	    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing >/dev/null; }; }; rc=$$?; \
	if [ -n "$$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	for svc in mariadb postgresql; do \
	  if [ -x /etc/init.d/$$svc ] && /etc/init.d/$$svc status >/dev/null 2>&1; then \
	    echo "db-servers: stopping the $$svc service the package started"; /etc/init.d/$$svc stop >/dev/null 2>&1 || true; \
	  fi; \
	done; \
	exit $$rc

# The database tests alone (real servers on loop mounts; about 2 minutes as root).
test-databases: venv azurite apt-deps db-servers
	$(PY) -m pytest -q tests/databases $(PYTEST_ARGS)

# Worst commit stall of a transactional load: database branch vs freeze only vs no job (JSON, root only).
bench-databases: venv azurite apt-deps db-servers
	$(PY) bench/db_commit_stall.py $(BENCH_ARGS)
