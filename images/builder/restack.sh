#!/bin/sh
# restack's CLI from its source tree in /opt/restack: Node 22 strips the TypeScript types as it
# loads them (it would not under node_modules, which is why the tree is not an npm package).
exec /usr/local/bin/node /opt/restack/src/cli/main.ts "$@"
