#!/usr/bin/env bash
# Builds (or reuses from the cache) the test cluster's binaries at the versions pinned in
# versions.env, and installs etcd and openssl from Debian when they are missing.
# Prints the directory holding kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet,
# kwok and helm on stdout; everything else goes to stderr. Idempotent: a warm run takes well
# under a second, a cold one builds Kubernetes from the Go module proxy (see README.md).
#
# With --node, also the real node's half (node-up): containerd, runc and the CNI plugins, and the
# pause, registry and builder images as docker-archive tars for `ctr images import`.
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
  local missing=() package
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v openssl >/dev/null || missing+=(openssl)
  if ((node)); then
    # runc's seccomp support links libseccomp (cgo); pause is a static C program; the images are
    # packed by umoci and converted by skopeo; the registry image is Debian's registry.
    for package in gcc libc6-dev pkg-config libseccomp-dev umoci skopeo docker-registry iproute2; do
      dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
  fi
  ((${#missing[@]})) || return 0
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "missing ${missing[*]}: run 'apt-get install ${missing[*]}' as root"
    sudo=(sudo)
  fi
  log "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq >&2
  # RUNLEVEL=1: a package's own service (Debian's registry) is not started.
  RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
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

# Builds into $1.partial.$$ with the command "$2..." (which gets the partial directory as $PARTIAL)
# and renames it to $1 at the end, so an interrupted build is redone, never half-used.
build_into() {
  local dir=$1 what=$2 start=$SECONDS
  shift 2
  local partial=$dir.partial.$$
  rm -rf "$partial"
  mkdir -p "$partial"
  log "$what: building into $dir"
  PARTIAL=$partial "$@"
  rm -rf "$dir"
  mv -T "$partial" "$dir"
  log "$what: built in $((SECONDS - start)) s"
}

go_install_containerd() {
  # no_btrfs: the btrfs snapshotter needs btrfs headers (cgo); the node uses overlayfs.
  GOBIN=$PARTIAL CGO_ENABLED=0 go install -trimpath -tags no_btrfs \
    -ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" >&2
}

go_install_runc() {
  # seccomp: runc loads the pod's seccomp profile through libseccomp, which needs cgo.
  GOBIN=$PARTIAL CGO_ENABLED=1 go install -trimpath -tags "seccomp urfave_cli_no_docs" \
    -ldflags="-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION" >&2
}

go_install_cni_plugins() {
  local module=github.com/containernetworking/plugins
  GOBIN=$PARTIAL CGO_ENABLED=0 go install -trimpath \
    -ldflags="-s -w -X $module/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    "$module/plugins/main/bridge@$CNI_PLUGINS_VERSION" "$module/plugins/main/loopback@$CNI_PLUGINS_VERSION" \
    "$module/plugins/ipam/host-local@$CNI_PLUGINS_VERSION" "$module/plugins/meta/portmap@$CNI_PLUGINS_VERSION" >&2
}

# Packs the rootfs $1 as a one-layer image with the entrypoint "$3..." into $PARTIAL/image.tar, a
# docker-archive tagged $2 (what `ctr images import` names it), and writes $2 to $PARTIAL/ref.
pack_image() {
  local rootfs=$1 ref=$2 layout=$PARTIAL/oci argument
  shift 2
  local config=(--os linux --architecture amd64)
  for argument in "$@"; do config+=(--config.entrypoint "$argument"); done
  umoci init --layout "$layout"
  umoci new --image "$layout:image"
  umoci insert --image "$layout:image" "$rootfs" /
  umoci config --image "$layout:image" "${config[@]}"
  skopeo copy --quiet "oci:$layout:image" "docker-archive:$PARTIAL/image.tar:$ref" >&2
  rm -rf "$layout" "$rootfs"
  echo "$ref" >"$PARTIAL/ref"
}

# The sandbox image: kubernetes' own pause.c at KUBERNETES_VERSION, compiled as its Makefile does.
make_pause_image() {
  local source rootfs=$PARTIAL/rootfs
  source=$(module_file "k8s.io/kubernetes@$KUBERNETES_VERSION" Dir)/build/pause/linux/pause.c
  mkdir -p "$rootfs"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-$KUBERNETES_VERSION" -o "$rootfs/pause" "$source"
  pack_image "$rootfs" "restack.test/pause:$PAUSE_VERSION" /pause
}

# Debian's docker-registry with the libraries it links and a config serving :5000 from
# /var/lib/registry (an emptyDir in the pod), deletes allowed as in the tests' own registry.
make_registry_image() {
  local rootfs=$PARTIAL/rootfs library version
  mkdir -p "$rootfs/usr/bin" "$rootfs/etc/docker/registry" "$rootfs/var/lib/registry"
  cp /usr/bin/docker-registry "$rootfs/usr/bin/"
  for library in $(ldd /usr/bin/docker-registry | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
  done
  cat >"$rootfs/etc/docker/registry/config.yml" <<'YAML'
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: /var/lib/registry}
  delete: {enabled: true}
http: {addr: ":5000"}
YAML
  version=$(basename "$(registry_image_dir)")
  pack_image "$rootfs" "restack.test/registry:$version" /usr/bin/docker-registry serve /etc/docker/registry/config.yml
}

# The builder image of this checkout (images/builder/build.sh, which needs the Debian mirror once
# for its debootstrap base and for apt in its run step). Its work directory is outside the cache:
# the build container's mapped root must traverse it, and /root is closed to it.
make_builder_image() {
  local work ref
  ref=restack.test/builder:$(builder_image_key)
  work=$(mktemp -d /var/tmp/restack-node-builder-XXXXXX)
  RESTACK_BUILDER_WORK=$work "$repo_root/images/builder/build.sh" >&2 || {
    rm -rf "$work"
    die "images/builder/build.sh failed (its output is above)"
  }
  skopeo copy --quiet "oci:$work/oci:builder" "docker-archive:$PARTIAL/image.tar:$ref" >&2
  rm -rf "$work"
  echo "$ref" >"$PARTIAL/ref"
}

install_node() {
  [[ -x $containerd_bin/containerd && -x $containerd_bin/containerd-shim-runc-v2 && -x $containerd_bin/ctr ]] || {
    require_go "containerd $CONTAINERD_VERSION"
    build_into "$containerd_bin" "containerd $CONTAINERD_VERSION" go_install_containerd
  }
  [[ -x $runc_bin/runc ]] || {
    require_go "runc $RUNC_VERSION"
    build_into "$runc_bin" "runc $RUNC_VERSION" go_install_runc
  }
  [[ -x $cni_bin/bridge && -x $cni_bin/host-local && -x $cni_bin/loopback && -x $cni_bin/portmap ]] || {
    require_go "the CNI plugins $CNI_PLUGINS_VERSION"
    build_into "$cni_bin" "CNI plugins $CNI_PLUGINS_VERSION" go_install_cni_plugins
  }
  [[ -s $pause_image_dir/image.tar ]] || build_into "$pause_image_dir" "pause image $PAUSE_VERSION" make_pause_image
  local registry builder
  registry=$(registry_image_dir)
  [[ -s $registry/image.tar ]] || build_into "$registry" "registry image" make_registry_image
  builder=$(builder_image_dir)
  [[ -s $builder/image.tar ]] || build_into "$builder" "builder image" make_builder_image
  # Builder images of other trees: keep the three used last (node-up touches the one it imports).
  find "$node_images/builder" -mindepth 1 -maxdepth 1 -type d ! -name '*.partial.*' -printf '%T@ %p\n' |
    sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
  log "node binaries and images: cached in $cache_root"
}

link_toolset() {
  mkdir -p "$tool_bin"
  local cmd
  for cmd in "${k8s_commands[@]}"; do ln -sfn "$k8s_bin/$cmd" "$tool_bin/$cmd"; done
  ln -sfn "$kwok_dir/bin/kwok" "$tool_bin/kwok"
  ln -sfn "$helm_bin/helm" "$tool_bin/helm"
}

node=0
case ${1:-} in
  --node) node=1 ;;
  '') ;;
  *) die "usage: $0 [--node]" ;;
esac

mkdir -p "$cache_root"
# Test processes may call this concurrently; one builds, the others wait and reuse. The node's
# half has a lock of its own, so that building a builder image does not hold up control planes.
wait_for_lock() {
  local fd=$1
  flock -n "$fd" || {
    log "waiting for another install.sh to finish ($2)"
    flock "$fd"
  }
}
exec 9>"$cache_root/install.lock"
wait_for_lock 9 "$cache_root/install.lock"
install_debian_packages
build_kubernetes
install_kwok
install_helm
link_toolset
exec 9>&-
if ((node)); then
  exec 8>"$cache_root/install-node.lock"
  wait_for_lock 8 "$cache_root/install-node.lock"
  install_node
fi
echo "$tool_bin"
