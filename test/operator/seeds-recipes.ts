// The seeds' example as recipes on a base image of the test's own (busybox, see pushBusyboxBase):
// ssl and python3 in one Stackerfile, A applying both in another.

/** ssl and python3 from `base`; `python` is python3's version (python3+1 changes it); `extra` adds to python3's run step. */
export function depsRecipe(base: string, python: string, extra = ''): string {
  return [
    `ssl:\n  from: {type: docker, url: "${base}"}\n  run: |\n    mkdir -p /usr/lib/ssl\n    echo "openssl 3.0.13" > /usr/lib/ssl/version\n`,
    `python3:\n  from: {type: docker, url: "${base}"}\n  run: |\n    mkdir -p /usr/bin\n    echo "#!/bin/sh" > /usr/bin/python3\n    echo "echo Python ${python}" >> /usr/bin/python3\n    chmod +x /usr/bin/python3\n${extra}`,
  ].join('');
}

/** A from `base`, applying `<prefix>/ssl:latest` and `<prefix>/python3:latest`, with a run step of its own. */
export function appRecipe(base: string, prefix: string): string {
  return `A:\n  from: {type: docker, url: "${base}"}\n  apply:\n    - docker://${prefix}/ssl:latest\n    - docker://${prefix}/python3:latest\n  run: |\n    mkdir -p /srv/A\n    echo "A" > /srv/A/README\n`;
}
