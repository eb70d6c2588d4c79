#!/usr/bin/env node
// The `restack` command. It checks the Node.js version before loading anything that needs a
// newer one, so an old Node says what to do instead of failing deep inside a library. An
// installed package runs the CLI compiled to JavaScript (dist/, built by npm pack's prepack); a
// checkout of the repository, which has src/ and no need to build, runs the source as it is.
import { existsSync } from 'node:fs';

const required = { major: 22, minor: 19 };
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < required.major || (major === required.major && minor < required.minor)) {
  process.stderr.write(
    `restack: needs Node.js ${required.major}.${required.minor} or later, but ${process.execPath} is ${process.version}.\n` +
      `Install Node.js ${required.major} or newer and put it first on PATH (or, in restack's repository, run npx restack: it uses the Node.js the repository pins).\n`,
  );
  process.exit(1);
}
const source = new URL('../src/cli/main.ts', import.meta.url);
await import(existsSync(source) ? source.href : '../dist/cli/main.js');
