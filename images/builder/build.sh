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
#   RESTACK_CACHE         where the debootstrap tar is cached (default ~/.cache/restack), the
#                         same cache the tests use
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

# restack compiled to JavaScript (tsconfig.build.json) with production dependencies only, staged
# outside the repository so the repository's own node_modules (with the dev tools) is left alone;
# npm installs them from its cache, which scripts/install.sh filled.
tree=$work/restack
rm -rf "$tree"
mkdir -p "$tree"
chmod 755 "$work"
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
  --substitute "BASE_TAR=$base_tar" \
  --substitute "NODE_BIN=$node_bin" \
  --substitute "RESTACK_TREE=$tree" \
  --substitute "VERSION=$version" \
  --roots-dir "$work/roots" \
  --oci-dir "$work/oci" \
  "$@"
