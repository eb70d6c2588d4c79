#!/usr/bin/env bash
# Builds the restack builder image (also the operator image) with restack itself.
#
#   images/builder/build.sh --push docker://HOST/PREFIX [--tag TAG]...   push PREFIX/builder:TAG
#   images/builder/build.sh --oci-dir DIR                                 only an OCI layout (ref "builder")
#
# Every argument goes to `restack build`. Environment:
#   RESTACK_BUILDER_WORK  work dir: staged tree, build storage, default OCI layout
#                         (default /var/tmp/restack-builder-image; the build container's mapped
#                         root must be able to traverse it, so not under /root)
#   SUITE, DEBIAN_MIRROR  the debootstrap base (default bookworm from deb.debian.org)
#   RESTACK_CACHE         where the debootstrap tar and the operating system image of os.yaml
#                         are cached (default ~/.cache/restack), the same cache the tests use
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
suite=${SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${RESTACK_CACHE:-$HOME/.cache/restack}/debootstrap
work=${RESTACK_BUILDER_WORK:-/var/tmp/restack-builder-image}
node_bin=$(realpath "$repo/node_modules/node/bin/node")

if [[ ! -x $node_bin ]]; then
  echo "build.sh: $repo/node_modules/node/bin/node is missing: run scripts/install.sh first" >&2
  exit 1
fi

# The minbase rootfs as an uncompressed tar, made once per suite: written under a temporary
# name and renamed, so an interrupted run never leaves a partial tarball in the cache.
base_tar=$cache/$suite-minbase.tar
if [[ ! -f $base_tar ]]; then
  echo "build.sh: debootstrap --variant=minbase $suite (once, cached in $cache)" >&2
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/tmp-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  debootstrap --variant=minbase "$suite" "$tmp/rootfs" "$mirror" >&2
  tar --numeric-owner -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
  mv "$tmp/rootfs.tar" "$base_tar"
  rm -rf "$tmp"
  trap - EXIT
fi

# The operating system image (os.yaml: the base, apt packages, Node), keyed by everything it is
# made of, so that a change to restack's source does not run apt again. Built under a lock (the
# tests and the real node's installer may build at once) into a partial directory renamed when
# complete; the three used last are kept.
os_cache=${RESTACK_CACHE:-$HOME/.cache/restack}/builder-os
os_key=$( { cat "$here/os.yaml"; sha256sum "$node_bin" "$base_tar" | cut -d' ' -f1; } | sha256sum | cut -c1-16)
os_layout=$os_cache/$os_key
mkdir -p "$os_cache" "$work"
chmod 755 "$work"
exec {os_lock}>"$os_cache/.lock"
flock "$os_lock"
if [[ ! -f $os_layout/index.json ]]; then
  echo "build.sh: building the operating system image (os.yaml), cached in $os_layout" >&2
  rm -rf "$work/os-roots" "$work/os-oci" "$os_layout.partial"
  "$node_bin" "$repo/src/cli/main.ts" build -f "$here/os.yaml" \
    --substitute "BASE_TAR=$base_tar" --substitute "NODE_BIN=$node_bin" \
    --roots-dir "$work/os-roots" --oci-dir "$work/os-oci" >&2
  mv "$work/os-oci" "$os_layout.partial"
  mv "$os_layout.partial" "$os_layout"
  rm -rf "$work/os-roots"
fi
touch "$os_layout"
find "$os_cache" -mindepth 1 -maxdepth 1 -type d ! -name '*.partial' -printf '%T@ %p\n' | sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
flock -u "$os_lock"

# restack compiled to JavaScript (tsconfig.build.json) with production dependencies only, staged
# outside the repository so the repository's own node_modules (with the dev tools) is left alone;
# npm installs them from its cache, which scripts/install.sh filled.
tree=$work/restack
rm -rf "$tree"
mkdir -p "$tree"
"$node_bin" "$repo/node_modules/typescript/bin/tsc" -p "$repo/tsconfig.build.json" --outDir "$tree/dist" >&2 || {
  echo "build.sh: compiling src/ with tsconfig.build.json failed: run npm run typecheck to see why" >&2
  exit 1
}
cp "$repo/package.json" "$repo/package-lock.json" "$tree/"
(cd "$tree" && npm ci --omit=dev --ignore-scripts --offline --no-audit --no-fund --loglevel=error) >&2 || {
  echo "build.sh: npm ci --omit=dev --offline failed in $tree: fill the npm cache with scripts/install.sh (npm ci) and run again" >&2
  exit 1
}

version=$("$node_bin" -p 'require(process.argv[1]).version' "$repo/package.json")

exec "$node_bin" "$repo/src/cli/main.ts" build \
  -f "$here/stacker.yaml" \
  --substitute "OS_LAYOUT=$os_layout" \
  --substitute "RESTACK_TREE=$tree" \
  --substitute "VERSION=$version" \
  --roots-dir "$work/roots" \
  --oci-dir "$work/oci" \
  "$@"
