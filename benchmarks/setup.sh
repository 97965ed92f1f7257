#!/usr/bin/env bash
# The benchmarks' yardsticks: etcd (etcd-server) and HAProxy (haproxy) from Debian, and
# dnsmasq (dnsmasq-base), the DNS server of the approaches figure.
# Idempotent: installs only what is missing. Needs root (or sudo) and Debian's apt.
# The benchmarks start them on loopback themselves; nothing is started here.
set -euo pipefail

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)

if [ ${#missing[@]} -eq 0 ]; then
    echo "benchmarks/setup.sh: etcd, haproxy and dnsmasq are installed"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "benchmarks/setup.sh: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian may start the packaged services on install where an init system runs; the
# benchmarks run their own instances on free loopback ports, so those are not needed.
