/**
 * Run by userns.test.ts inside `unshare --user --mount`, as a build pod with `hostUsers: false`
 * would run: prepares a busybox base with the overlay driver, optionally runs a step in LXC
 * (no lxc.idmap: the namespace is the isolation), writes the layer, prints a JSON report.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { detectIdentity } from '../../src/build/idmap.ts';
import { writeLayer } from '../../src/build/layer-writer.ts';
import { runInContainer } from '../../src/build/lxc.ts';
import { setupBtrfs } from '../../src/build/storage/btrfs-tools.ts';
import { openStorage } from '../../src/build/storage/open.ts';
import { unpackLayer } from '../../src/build/unpack.ts';
import { busyboxLayer, layerSource, readTarEntries, tarLayer } from './helpers.ts';

const [dir, withLxc] = process.argv.slice(2) as [string, string];
const identity = await detectIdentity();
const storage = await openStorage(join(dir, 'storage'), 'auto', identity);
const report: Record<string, unknown> = { identity, storage: storage.kind };
try {
  const base = [layerSource(await busyboxLayer()), layerSource(await tarLayer([{ name: 'bin/.wh.stat' }, { name: 'etc/motd', content: 'hi\n' }]))];
  const working = await storage.createWorking(base, 'step');
  const script = 'echo made > /made; rm /bin/ls';
  if (withLxc === 'lxc') {
    const lines: string[] = [];
    report['run'] = await runInContainer({ layer: 'step', rootfs: working.rootfs, script, identity, lxcPath: join(dir, 'lxc'), onLine: (l) => lines.push(l) });
    report['lines'] = lines;
  } else {
    const { execa } = await import('execa');
    await execa('chroot', [working.rootfs, '/bin/sh', '-ec', script]);
  }
  const layer = await writeLayer({ diff: await storage.diff(working), directory: dir, idShift: identity.idShift });
  report['layer'] = (await readTarEntries(await readFile(layer.path))).map((e) => `${e.type} ${e.name} ${e.uid}`);
  await storage.discard(working);

  const devices = await tarLayer([{ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 }]);
  report['deviceWarnings'] = (await unpackLayer(devices.stream(), { root: dir, mediaType: devices.mediaType, digest: devices.digest })).warnings;
  report['btrfs'] = await setupBtrfs({ dir: join(dir, 'btrfs'), size: '200M' }).then(
    () => 'mounted',
    (error: Error & { hint?: string }) => `${error.message} | ${error.hint ?? ''}`,
  );
} finally {
  await storage.cleanup();
}
process.stdout.write(JSON.stringify(report));
