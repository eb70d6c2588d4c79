# shellcheck shell=bash disable=SC2034 # the variables here are used by the scripts sourcing this file
# Sourced by install.sh, up and down: the pinned versions, where their binaries are cached,
# and logging. Logs go to stderr so that stdout carries only each script's one-line result.
cluster_src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$cluster_src/../.." && pwd)
# shellcheck source=versions.env
. "$cluster_src/versions.env"

cache_root=${RESTACK_CACHE:-$HOME/.cache/restack}
k8s_bin=$cache_root/k8s/$KUBERNETES_VERSION/bin
kwok_dir=$cache_root/kwok/$KWOK_VERSION
kwok_stages=$kwok_dir/stages.yaml
helm_bin=$cache_root/helm/$HELM_VERSION/bin
# One directory of links to every tool of this version set: what tests put on PATH.
tool_bin=$cache_root/toolset/k8s-${KUBERNETES_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}

# The real node's binaries (install.sh --node) and the images node-up imports into containerd,
# each a docker-archive tar named by its reference in the file `ref` beside it.
containerd_bin=$cache_root/containerd/$CONTAINERD_VERSION/bin
runc_bin=$cache_root/runc/$RUNC_VERSION/bin
cni_bin=$cache_root/cni-plugins/$CNI_PLUGINS_VERSION/bin
node_images=$cache_root/node-images
pause_image_dir=$node_images/pause/$PAUSE_VERSION-k8s-$KUBERNETES_VERSION

log() { echo "restack-cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

# A running cluster's state (used by up and down). Processes are recognised by this directory
# appearing in their command line, so a recycled pid is never killed.
cluster_dir=${RESTACK_CLUSTER_DIR:-/dev/shm/restack-cluster-$(id -u)}
cluster_dir=${cluster_dir%/}
cluster_marker=$cluster_dir/.restack-cluster
pid_dir=$cluster_dir/pids
admin_kubeconfig=$cluster_dir/kubeconfig
restricted_kubeconfig=$cluster_dir/restricted.kubeconfig

# Polls "$@" every 0.2 s until it succeeds; after $timeout_seconds dies with the description.
wait_until() {
  local description=$1 timeout_seconds=$2
  shift 2
  local deadline=$((SECONDS + timeout_seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after $timeout_seconds s waiting for $description"
    sleep 0.2
  done
}

# Runs a component in its own session (so a terminal's Ctrl-C does not half-kill the cluster),
# logging to logs/<name>.log, and records its pid for down.
start() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$cluster_dir/logs/$name.log" 2>&1 &
  echo $! >"$pid_dir/$name"
}

started_here() {
  local pid=$1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$cluster_dir/"
}

# The registry image packs Debian's docker-registry: keyed by the package's version.
registry_image_dir() {
  local version
  version=$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null) || die "docker-registry is not installed: run 'apt-get install docker-registry'"
  echo "$node_images/registry/${version//[^A-Za-z0-9._-]/_}"
}

# The builder image is built from this checkout (images/builder/build.sh): keyed by a hash of
# every file that goes into it, so a change to src/ builds a new one and an unchanged tree reuses it.
builder_image_key() {
  (cd "$repo_root" && find src images/builder package.json package-lock.json tsconfig.json tsconfig.build.json -type f -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}
builder_image_dir() { echo "$node_images/builder/$(builder_image_key)"; }

# The real node (node-up, node-down). One at a time on a machine: the kubelet's cgroups, the CNI
# bridge and its subnet are machine-wide. $node_link says whose it is (a link to its directory),
# and gives containerd's shims a socket directory short enough for a unix socket path.
node_dir=$cluster_dir/node
node_pid_dir=$node_dir/pids
node_link=/run/restack-node
node_name=localhost
node_bridge=restack0
node_subnet=10.213.0.0/24
node_bridge_address=10.213.0.1/24
node_cgroup_root=/restack-node
node_kubelet_root=$node_dir/kubelet
node_containerd_socket=$node_dir/containerd/containerd.sock
# The sysctls the kubelet sets (kubelet's setupKernelTunables): node-up records their values,
# node-down puts them back.
node_sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
