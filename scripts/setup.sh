#!/usr/bin/env bash
# Everything gfsdeploy's lab and tests need on a fresh Debian/Ubuntu machine (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
  echo "scripts/setup.sh installs system packages: run it as root (sudo scripts/setup.sh)" >&2
  exit 1
fi
apt-get update -qq
# openssh-server: the lab's nodes and the engine tests run real sshd
# iproute2/iptables/util-linux/kmod: namespaces, veth, loop devices, firewall rules
# glusterfs-server/-client, lvm2: real glusterd in the lab, packages the playbook installs;
# xfsprogs: the lab heketi makes an XFS filesystem per device (glusterfs-common pulls it in too)
# ruby + vagrant: Vagrantfile syntax check and `vagrant validate`; e2fsprogs/fdisk: dirty-disk tests
# cron: the crontab command ansible-core's cron module needs (differential test of Ansible modules)
# sudo: become with a password / requiretty / su tests in lab nodes (tests/transport)
# ufw: Ubuntu's firewall, for real in lab nodes (installed inactive: the host's firewall is untouched)
apt-get install -y -qq --no-install-recommends \
  openssh-server openssh-client iproute2 iptables util-linux kmod procps psmisc \
  glusterfs-server glusterfs-client lvm2 thin-provisioning-tools apt-utils openssh-sftp-server \
  ruby vagrant e2fsprogs xfsprogs fdisk ca-certificates python3-venv ufw sudo cron >/dev/null
mkdir -p /run/sshd
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
