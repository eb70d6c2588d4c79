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

started_here() {
  local pid=$1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$cluster_dir/"
}
