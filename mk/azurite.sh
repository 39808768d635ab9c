#!/bin/sh
# Install Azurite (the Azure Storage emulator the tests and `make run` use) with npm: `make azurite` runs this.
# usage: sh mk/azurite.sh DIR VERSION     -> DIR/node_modules/azurite/dist/src/blob/main.js
#
# Node.js and npm come from the distribution when they are missing: as root this installs Debian's `nodejs`
# and `npm` (Debian 12: Node 18; Azurite declares node >= 10); not root, it says in one line what to install.
# tests/packaging/test_fresh_machine.py runs this same script inside a debootstrapped Debian 12 root.
set -eu
dir=$1
version=$2

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "azurite: node and npm are missing: install the distribution's nodejs and npm (as root: apt-get install nodejs npm), or run make as root" >&2
    exit 1
  fi
  echo "azurite: node or npm missing, installing the distribution's nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt="apt-get -o DPkg::Lock::Timeout=600 -y -qq --no-install-recommends"
  # The package lists may be missing (fresh container) or stale: update once if the install fails.
  $apt install nodejs npm >/dev/null 2>&1 || { $apt update && $apt install nodejs npm >/dev/null; }
fi
echo "azurite: node $(node --version), npm $(npm --version)"

mkdir -p "$dir"
cd "$dir"
npm install --no-audit --no-fund --loglevel=error --save-exact "azurite@$version"
test -f node_modules/azurite/dist/src/blob/main.js
