#!/usr/bin/env bash
# Installs everything restack's tests, demo and builder need on a fresh Debian machine, and
# nothing that is already there. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the registry and independent OCI tools, the builder's tools, etcd for the
# control-plane tests, Lua for the Argo CD health checks (docs/argocd/), and what the test
# cluster's real node is built with (runc links libseccomp; the pause image is static C).
packages=(
  docker-registry skopeo umoci apache2-utils
  lxc uidmap btrfs-progs squashfs-tools busybox-static debootstrap attr
  etcd-server openssl lua5.4
  gcc libc6-dev pkg-config libseccomp-dev iproute2
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  echo "install: apt packages: ${missing[*]}"
  sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  # The packages' own services (a system registry, etcd) are not wanted: tests start their own.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Unprivileged LXC needs a subordinate id range for the user that builds.
user=$(id -un)
for file in /etc/subuid /etc/subgid; do
  if ! grep -q "^${user}:" "$file" 2>/dev/null; then
    echo "install: ${file}: ${user}:100000:65536"
    echo "${user}:100000:65536" >> "$file"
  fi
done

# Node 22 (pinned in package.json) and the libraries.
if [[ ! -x node_modules/.bin/node ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "install: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The Kubernetes control plane for the operator tests, built once and cached outside the repo; as
# root, also the real node's containerd, runc, CNI plugins and images (the node runs as root only).
if [[ -x test/cluster/install.sh ]]; then
  if [[ $(id -u) == 0 ]]; then test/cluster/install.sh --node; else test/cluster/install.sh; fi
fi

# cosign, the independent verifier of the signing tests, built once and cached outside the repo.
test/services/install-cosign.sh >/dev/null
