#!/usr/bin/env bash
# Install the Debian packages mwkit's tests and demo need, and only those missing.
#
# Idempotent and fast when everything is there: dpkg-query decides, and apt-get (with
# its one 'update') runs only when a package is missing. Services are not started by
# the packages' install scripts (a temporary policy-rc.d says no): mwkit starts the
# servers it needs itself (.ci/start-docker.sh, mwkit.database), on ports of its own.
set -euo pipefail

PACKAGES=(
    docker.io        # the Docker engine (dockerd, containerd, runc)
    debootstrap      # builds mwkit's base images offline from the apt mirror
    mariadb-server   # the monolith's database, as a local process
    mariadb-client
    chromium         # the browser tests of the notebooks
    fonts-dejavu-core
    git              # the Microwizard deploys Git commits
    etcd-server
    haproxy          # the server-side balancer of notebook 07c (approaches)
    dnsmasq-base     # the DNS server of notebook 07c (approaches)
)

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-system: all ${#PACKAGES[@]} packages present"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "install-system: missing ${missing[*]}; run this script as root" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-system: apt-get update"
apt-get update -qq
echo "install-system: installing ${missing[*]}"
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /tmp/mwkit-apt-install.log 2>&1 || {
    tail -n 30 /tmp/mwkit-apt-install.log >&2
    echo "install-system: apt-get install failed (full log: /tmp/mwkit-apt-install.log)" >&2
    exit 1
}
echo "install-system: done"
