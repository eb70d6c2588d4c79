#!/usr/bin/env bash
# Builds (or reuses from the cache) the test cluster's binaries at the versions pinned in
# versions.env, and installs etcd and openssl from Debian when they are missing.
# Prints the directory holding kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet,
# kwok and helm on stdout; everything else goes to stderr. Idempotent: a warm run takes well
# under a second, a cold one builds Kubernetes from the Go module proxy (see README.md).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

k8s_commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet)

require_go() {
  command -v go >/dev/null ||
    die "the Go toolchain (>= 1.26) is needed once to build $1 into $cache_root: install it (https://go.dev/doc/install) and put 'go' on PATH, then rerun $0"
}

# Field $2 (Dir, GoMod) of `go mod download -json $1`: the local copy of a module@version from
# the Go module proxy.
module_file() {
  (cd / && go mod download -json "$1") | sed -n "s/^\t\"$2\": \"\(.*\)\",\?$/\1/p"
}

install_debian_packages() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v openssl >/dev/null || missing+=(openssl)
  ((${#missing[@]})) || return 0
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "missing ${missing[*]}: run 'apt-get install ${missing[*]}' as root"
    sudo=(sudo)
  fi
  log "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >&2
}

# Builds the Kubernetes commands in one `go build` so their shared packages compile once.
build_kubernetes() {
  local cmd complete=1
  for cmd in "${k8s_commands[@]}"; do [[ -x $k8s_bin/$cmd ]] || complete=0; done
  if ((complete)); then
    log "Kubernetes $KUBERNETES_VERSION: cached in $k8s_bin"
    return
  fi
  require_go "Kubernetes $KUBERNETES_VERSION"
  grep -q "^require k8s.io/kubernetes $KUBERNETES_VERSION\b" "$cluster_src/go.mod" ||
    die "$cluster_src/go.mod does not require k8s.io/kubernetes $KUBERNETES_VERSION (versions.env's KUBERNETES_VERSION): regenerate go.mod as README.md describes"

  local minor=${KUBERNETES_VERSION#v1.} ldflags=(-s -w) pkg
  minor=${minor%%.*}
  # Without these, /version reports v0.0.0 and Helm's kubeVersion checks fail.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=(-X "$pkg.gitVersion=$KUBERNETES_VERSION" -X "$pkg.gitMajor=1" -X "$pkg.gitMinor=$minor"
      -X "$pkg.buildDate=$KUBERNETES_BUILD_DATE" -X "$pkg.gitTreeState=clean" -X "$pkg.gitCommit=")
  done
  local partial=$k8s_bin.partial.$$ start=$SECONDS
  log "Kubernetes $KUBERNETES_VERSION: building ${k8s_commands[*]} (10+ minutes on 2 cores when the Go build cache is cold)"
  rm -rf "$partial"
  (cd "$cluster_src" && CGO_ENABLED=0 go build -trimpath -ldflags="${ldflags[*]}" -o "$partial/" \
    "${k8s_commands[@]/#/k8s.io/kubernetes/cmd/}") >&2
  rm -rf "$k8s_bin"
  mv -T "$partial" "$k8s_bin"
  log "Kubernetes $KUBERNETES_VERSION: built in $((SECONDS - start)) s into $k8s_bin"
}

# kwok's binary has no built-in stages (kwokctl embeds them); take the standard ones from the
# same kwok release: node-initialize, node-heartbeat-with-lease (kwok renews node leases by
# default), and pod-ready, pod-complete (Job pods Succeed), pod-delete.
install_kwok() {
  if [[ -x $kwok_dir/bin/kwok && -s $kwok_stages ]]; then
    log "kwok $KWOK_VERSION: cached in $kwok_dir"
    return
  fi
  require_go "kwok $KWOK_VERSION"
  local partial=$kwok_dir.partial.$$ source stage
  rm -rf "$partial"
  log "kwok $KWOK_VERSION: installing from the Go module proxy"
  GOBIN=$partial/bin CGO_ENABLED=0 go install -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
  source=$(module_file "sigs.k8s.io/kwok@$KWOK_VERSION" Dir)/kustomize/stage
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"
    cat "$source/$stage.yaml"
  done >"$partial/stages.yaml"
  rm -rf "$kwok_dir"
  mv -T "$partial" "$kwok_dir"
}

install_helm() {
  if [[ -x $helm_bin/helm ]]; then
    log "helm $HELM_VERSION: cached in $helm_bin"
    return
  fi
  require_go "helm $HELM_VERSION"
  # As Helm's release Makefile: the version, and the Kubernetes version of its client-go as the
  # default for offline rendering (helm template, lint).
  local client_go major minor partial=$helm_bin.partial.$$
  client_go=$(grep -m1 -o 'k8s.io/client-go v0\.[0-9]*' "$(module_file "helm.sh/helm/v3@$HELM_VERSION" GoMod)")
  minor=${client_go##*v0.}
  major=1
  rm -rf "$partial"
  log "helm $HELM_VERSION: installing from the Go module proxy"
  GOBIN=$partial CGO_ENABLED=0 go install -trimpath -ldflags="-s -w \
    -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  rm -rf "$helm_bin"
  mv -T "$partial" "$helm_bin"
}

link_toolset() {
  mkdir -p "$tool_bin"
  local cmd
  for cmd in "${k8s_commands[@]}"; do ln -sfn "$k8s_bin/$cmd" "$tool_bin/$cmd"; done
  ln -sfn "$kwok_dir/bin/kwok" "$tool_bin/kwok"
  ln -sfn "$helm_bin/helm" "$tool_bin/helm"
}

mkdir -p "$cache_root"
# Test processes may call this concurrently; one builds, the others wait and reuse.
exec 9>"$cache_root/install.lock"
flock -n 9 || {
  log "waiting for another install.sh to finish"
  flock 9
}
install_debian_packages
build_kubernetes
install_kwok
install_helm
link_toolset
echo "$tool_bin"
