/**
 * The builder image (images/builder/) built by restack itself, as the README says: build.sh into
 * an OCI layout, unpacked by umoci, and its programs run in a user namespace shaped like a build
 * pod's (`hostUsers: false`: 65536 ids, root inside), where `restack doctor` must be ready to build
 * and `restack build` must build a layer.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { detectIdentity } from '../../src/build/idmap.ts';
import { SkipError, requireProgram, startOrSkip } from '../services/service.ts';
import { tempDir } from '../build/helpers.ts';
import { suiteDir, writeBusyboxTarball } from './helpers.ts';

const repo = join(import.meta.dirname, '..', '..');
const mirror = process.env['DEBIAN_MIRROR'] ?? 'http://deb.debian.org/debian';
const packageVersion = (JSON.parse(await readFile(join(repo, 'package.json'), 'utf8')) as { version: string }).version;

/** The build installs packages with apt in its run step (and debootstraps once): both need the mirror. */
async function requireMirror(): Promise<void> {
  const release = `${mirror}/dists/${process.env['SUITE'] ?? 'bookworm'}/Release`;
  const failure = await fetch(release, { method: 'HEAD', signal: AbortSignal.timeout(5_000) }).then(
    (response) => (response.ok ? undefined : `HTTP ${response.status}`),
    (error: Error) => error.message,
  );
  if (failure !== undefined) throw new SkipError(`the Debian mirror is unreachable (HEAD ${release}: ${failure}); the builder image installs lxc from it`);
}

const { skip } = await startOrSkip(async () => {
  for (const [program, apt] of [['debootstrap', 'debootstrap'], ['umoci', 'umoci'], ['skopeo', 'skopeo'], ['newuidmap', 'uidmap']] as const) await requireProgram(program, apt);
  await requireMirror();
});

/**
 * Makes the unpacked rootfs the root of the mount namespace as a container runtime does (a mount
 * point entered with pivot_root, not a chroot, which LXC could not pivot out of), with /dev, /sys
 * and a fresh /proc, then runs the command with only the image's PATH: `sh -c SCRIPT sh ROOTFS PATH CMD...`.
 */
const enterRootfs = `
  root=$1 path=$2; shift 2
  mount --make-rprivate /
  mount --bind "$root" "$root"
  mount --rbind /dev "$root/dev"
  mount --rbind /sys "$root/sys"
  mount -t proc proc "$root/proc"
  cd "$root"
  pivot_root . .oldroot
  umount -l /.oldroot
  exec /usr/bin/env -i "$path" HOME=/root "$@"
`;

interface ImageConfig {
  config: { Entrypoint?: string[]; Cmd?: string[]; User?: string; Env?: string[]; Labels?: Record<string, string> };
}

describe('the builder image, built by restack from images/builder/stacker.yaml', { skip }, () => {
  let work: string;
  let rootfs: string;
  let image: ImageConfig;
  /** Runs a program of the image as root of a pod-like user namespace: the caller is root, ids 1-65535 come from its subordinate range. */
  let inImage: (command: string[]) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

  before(async () => {
    work = await suiteDir('restack-builder-image-');
    const built = await execa(join(repo, 'images', 'builder', 'build.sh'), [], { env: { RESTACK_BUILDER_WORK: work }, reject: false, all: true });
    assert.equal(built.exitCode, 0, `images/builder/build.sh failed:\n${built.all.slice(-4000)}`);
    const layout = `${join(work, 'oci')}:builder`;
    image = JSON.parse((await execa('skopeo', ['inspect', '--config', `oci:${layout}`])).stdout) as ImageConfig;
    await execa('umoci', ['unpack', '--rootless', '--image', layout, join(work, 'bundle')]);
    rootfs = join(work, 'bundle', 'rootfs');

    const { idShift } = await detectIdentity();
    const path = image.config.Env?.find((variable) => variable.startsWith('PATH=')) ?? 'PATH=/usr/bin:/bin';
    await mkdir(join(rootfs, '.oldroot'));
    inImage = async (command) => {
      const namespace = [
        '--user',
        '--map-root-user',
        `--map-users=${idShift.uid + 1},1,${idShift.size - 1}`,
        `--map-groups=${idShift.gid + 1},1,${idShift.size - 1}`,
        '--setgroups=allow',
        '--mount',
        '--pid',
        '--fork',
      ];
      const result = await execa('unshare', [...namespace, 'sh', '-euc', enterRootfs, 'sh', rootfs, path, ...command], { reject: false });
      return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
    };
  });
  after(async () => {
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test('restack is the entrypoint, on PATH, and runs compiled JavaScript, not the TypeScript source', async () => {
    assert.deepEqual(image.config.Entrypoint, ['/usr/local/bin/restack']);
    assert.deepEqual(image.config.Cmd, ['--help']);
    const help = await inImage(['restack', '--help']);
    assert.equal(help.exitCode, 0, help.stderr);
    assert.match(help.stdout, /^Usage: restack /);
    assert.match(help.stdout, /\boperator\b/);
    assert.match(help.stdout, /\bbuild\b/);
    const shipped = await inImage(['sh', '-c', 'test -f /opt/restack/dist/cli/main.js && test ! -e /opt/restack/src && ! find /opt/restack/dist -name "*.ts" | grep -q .']);
    assert.equal(shipped.exitCode, 0, 'dist/ holds JavaScript only, and no src/ is shipped');
  });

  test('node is the pinned Node 22', async () => {
    const node = await inImage(['node', '--version']);
    const pinned = (JSON.parse(await readFile(join(repo, 'node_modules', 'node', 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(node.stdout, `v${pinned}`);
    assert.match(node.stdout, /^v22\./);
  });

  test('the build tools are installed: lxc, uidmap, squashfs-tools, btrfs-progs', async () => {
    const lxc = await inImage(['lxc-start', '--version']);
    assert.equal(lxc.exitCode, 0, lxc.stderr);
    assert.match(lxc.stdout, /^\d+\.\d+/);
    for (const tool of ['newuidmap', 'mksquashfs', 'btrfs']) {
      const found = await inImage(['sh', '-c', `command -v ${tool}`]);
      assert.equal(found.exitCode, 0, `${tool} is not on the image's PATH`);
    }
  });

  test('restack doctor in a pod-like user namespace: ready to build', async () => {
    const doctor = await inImage(['restack', 'doctor', '--json']);
    const report = JSON.parse(doctor.stdout) as { ok: boolean; checks: { check: string; ok: boolean; required: boolean; detail: string }[] };
    const failed = report.checks.filter((check) => check.required && !check.ok);
    assert.deepEqual(failed, []);
    assert.equal(report.ok, true);
    assert.equal(doctor.exitCode, 0);
    const namespace = report.checks.find((check) => check.check === 'build user namespace');
    assert.match(namespace?.detail ?? '', /inside a user namespace mapping 65536 ids/);
  });

  test('restack inside the image builds a layer in an LXC container', async (t) => {
    await mkdir(join(rootfs, 'work'));
    await writeBusyboxTarball(join(rootfs, 'work', 'busybox.tar.gz'));
    await writeFile(
      join(rootfs, 'work', 'stacker.yaml'),
      ['hello:', '  from: {type: tar, url: /work/busybox.tar.gz}', '  run: echo built inside the builder image > /hello.txt', ''].join('\n'),
    );
    const built = await inImage(['restack', 'build', '-f', '/work/stacker.yaml', '--oci-dir', '/work/oci', '--roots-dir', '/work/roots', '--storage', 'overlay']);
    assert.equal(built.exitCode, 0, built.stderr);

    const bundle = await tempDir(t, 'restack-builder-image-hello-');
    await execa('umoci', ['unpack', '--rootless', '--image', `${join(rootfs, 'work', 'oci')}:hello`, join(bundle, 'bundle')]);
    assert.equal(await readFile(join(bundle, 'bundle', 'rootfs', 'hello.txt'), 'utf8'), 'built inside the builder image\n');
  });

  test('the operator user (65532), root subordinate ids, and OCI labels', async () => {
    assert.equal(image.config.User, '65532');
    const passwd = await readFile(join(rootfs, 'etc', 'passwd'), 'utf8');
    assert.match(passwd, /^restack:x:65532:65532:/m);
    for (const file of ['subuid', 'subgid']) assert.match(await readFile(join(rootfs, 'etc', file), 'utf8'), /^root:\d+:65536$/m);
    assert.equal(image.config.Labels?.['org.opencontainers.image.title'], 'restack');
    assert.equal(image.config.Labels?.['org.opencontainers.image.version'], packageVersion);
    assert.equal(image.config.Labels?.['org.opencontainers.image.licenses'], 'Apache-2.0');
  });
});
