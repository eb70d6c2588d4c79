#!/bin/sh
# restack's CLI, compiled to JavaScript in /opt/restack/dist (build.sh, tsconfig.build.json):
# no TypeScript transform is loaded at start-up.
exec /usr/local/bin/node /opt/restack/dist/cli/main.js "$@"
