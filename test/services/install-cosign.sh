#!/usr/bin/env bash
# Builds (or reuses from the cache) the pinned cosign, the reference verifier the signing tests
# check restack's signatures and attestations with. Prints the binary's path on stdout; logs go
# to stderr. A warm run takes well under a second; a cold one compiles cosign from the Go module
# proxy (several minutes on 2 cores). Concurrent callers wait for one build and reuse it.
set -euo pipefail

# v3.1.3's go.mod needs Go >= 1.26.0. v3 verifies the cosign tag scheme (sha256-<digest>.sig/.att)
# when the registry has no Sigstore bundle for the image, which is how restack publishes.
COSIGN_VERSION=v3.1.3
cache_root=${RESTACK_CACHE:-$HOME/.cache/restack}
cosign_dir=$cache_root/cosign/$COSIGN_VERSION

log() { echo "restack-cosign: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ -x $cosign_dir/cosign ]]; then
  echo "$cosign_dir/cosign"
  exit 0
fi
mkdir -p "$cache_root/cosign"
exec 9>"$cache_root/cosign/install.lock"
flock -n 9 || {
  log "waiting for another install-cosign.sh to finish"
  flock 9
}
if [[ ! -x $cosign_dir/cosign ]]; then
  command -v go >/dev/null ||
    die "the Go toolchain (>= 1.26) is needed once to build cosign $COSIGN_VERSION into $cosign_dir: install it (https://go.dev/doc/install), put 'go' on PATH and rerun $0"
  partial=$cosign_dir.partial.$$ start=$SECONDS
  rm -rf "$partial"
  log "cosign $COSIGN_VERSION: building from the Go module proxy (minutes when the Go build cache is cold)"
  GOBIN=$partial CGO_ENABLED=0 go install -trimpath \
    -ldflags="-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION" \
    "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION" >&2
  rm -rf "$cosign_dir"
  mv -T "$partial" "$cosign_dir"
  log "cosign $COSIGN_VERSION: built in $((SECONDS - start)) s into $cosign_dir"
fi
echo "$cosign_dir/cosign"
