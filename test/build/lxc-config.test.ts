import assert from 'node:assert/strict';
import { test } from 'node:test';
import { containerEnvironment, fstabEscape, lxcConfig, mountTargets, type ContainerSpec } from '../../src/build/lxc-config.ts';

const hostIdentity = { namespace: 'host', idShift: { uid: 100000, gid: 200000, size: 65536 } } as const;
const podIdentity = { namespace: 'namespaced', idShift: { uid: 0, gid: 0, size: 65536 } } as const;

const common = [
  'lxc.net.0.type = none',
  'lxc.mount.auto = proc:mixed',
  'lxc.mount.entry = /sys sys none rbind,ro,create=dir 0 0',
  'lxc.mount.entry = /etc/resolv.conf etc/resolv.conf none bind,ro,create=file 0 0',
];
const tail = ['lxc.autodev = 1', 'lxc.apparmor.profile = unconfined', 'lxc.environment = PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'lxc.environment = HOME=/root'];

const cases: { name: string; spec: ContainerSpec; lines: string[] }[] = [
  {
    name: 'on a host: the subordinate range is mapped',
    spec: { name: 'b1', rootfs: '/r/rootfs', identity: hostIdentity },
    lines: ['lxc.uts.name = b1', 'lxc.rootfs.path = dir:/r/rootfs', 'lxc.idmap = u 0 100000 65536', 'lxc.idmap = g 0 200000 65536', ...common, ...tail],
  },
  {
    name: "inside a pod's user namespace: no idmap, relative cgroups",
    spec: { name: 'b2', rootfs: '/r/rootfs', identity: podIdentity },
    lines: ['lxc.uts.name = b2', 'lxc.rootfs.path = dir:/r/rootfs', 'lxc.cgroup.relative = 1', ...common, ...tail],
  },
  {
    name: 'imports, deprecated import, binds and build environment',
    spec: {
      name: 'b3',
      rootfs: '/r/rootfs',
      identity: podIdentity,
      imports: { source: '/work/my imports', at: '/stacker' },
      binds: [
        { source: '/host/cache', dest: '/var/cache/apt', readOnly: false, isFile: false },
        { source: '/host/key', dest: '/etc/key', readOnly: true, isFile: true },
      ],
      environment: { PATH: '/opt/bin:/bin', http_proxy: 'http://127.0.0.1:3128' },
      resolvConf: '/run/resolv.conf',
    },
    lines: [
      'lxc.uts.name = b3',
      'lxc.rootfs.path = dir:/r/rootfs',
      'lxc.cgroup.relative = 1',
      'lxc.net.0.type = none',
      'lxc.mount.auto = proc:mixed',
      'lxc.mount.entry = /sys sys none rbind,ro,create=dir 0 0',
      'lxc.mount.entry = /run/resolv.conf etc/resolv.conf none bind,ro,create=file 0 0',
      'lxc.mount.entry = /work/my\\040imports stacker none bind,ro,create=dir 0 0',
      'lxc.mount.entry = /host/cache var/cache/apt none bind,create=dir 0 0',
      'lxc.mount.entry = /host/key etc/key none bind,ro,create=file 0 0',
      'lxc.autodev = 1',
      'lxc.apparmor.profile = unconfined',
      'lxc.environment = PATH=/opt/bin:/bin',
      'lxc.environment = HOME=/root',
      'lxc.environment = http_proxy=http://127.0.0.1:3128',
    ],
  },
];

for (const { name, spec, lines } of cases) {
  test(`lxc config: ${name}`, () => {
    assert.equal(lxcConfig(spec), `${lines.join('\n')}\n`);
  });
}

test('mount targets name every path LXC may create in the rootfs', () => {
  assert.deepEqual(mountTargets({ name: 'x', rootfs: '/r', identity: podIdentity, imports: { source: '/i', at: '/stacker/imports' } }), [
    'dev',
    'proc',
    'sys',
    'etc/resolv.conf',
    'stacker/imports',
  ]);
});

test('environment names and values an LXC config cannot carry are refused', () => {
  assert.throws(() => containerEnvironment({ 'BAD-NAME': 'x' }), /"BAD-NAME" is not a valid name/);
  assert.throws(() => containerEnvironment({ MULTI: 'a\nb' }), /MULTI contains a line break/);
  assert.equal(fstabEscape('a b\\c'), 'a\\040b\\134c');
});
