import { createReadStream } from 'node:fs';
import { chmod, lchown, mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildIdentity } from '../../build/idmap.ts';
import { writeLayer, type LayerFormat, type WrittenLayer } from '../../build/layer-writer.ts';
import type { BindMount, ImportsLocation } from '../../build/lxc-config.ts';
import { runInContainer } from '../../build/lxc.ts';
import type { LayerSource, StorageDriver, WorkingRootfs } from '../../build/storage/driver.ts';
import { unpackLayer } from '../../build/unpack.ts';
import { MediaType } from '../../oci/mediatypes.ts';
import type { OwnLayer } from '../../swap/compose.ts';
import type { OpenedReference } from '../images.ts';
import type { BindSpec } from './environment.ts';
import { LayerBuildError } from './errors.ts';
import type { BuildStep } from './events.ts';
import { placeDestImports, stageImports, type AcquiredImport } from './imports.ts';

/** What making a layer's own blob layers needs, for one layer. */
export interface OwnLayerContext {
  layer: string;
  storage: StorageDriver;
  identity: BuildIdentity;
  /** `<roots-dir>/build`: imports, labels, LXC state and blobs being written. */
  workDir: string;
  /** The output layout, where own blobs are written. */
  layout: OpenedReference;
  format: LayerFormat;
  sourceDateEpoch: number | undefined;
  created: string;
  step: (step: BuildStep, message: string) => void;
  output: (line: string) => void;
}

/** Writes a diff as a blob into the output layout and describes it as an own layer. */
async function storeLayer(context: OwnLayerContext, working: WorkingRootfs, createdBy: string): Promise<OwnLayer | undefined> {
  const diff = await context.storage.diff(working);
  // stacker's rule: a step that changes nothing adds no layer
  if (diff.entries.length === 0) {
    await context.storage.discard(working);
    return undefined;
  }
  const staging = join(context.workDir, 'blobs');
  await mkdir(staging, { recursive: true });
  let written: WrittenLayer | undefined;
  try {
    written = await writeLayer({ diff, directory: staging, format: context.format, idShift: context.identity.idShift, sourceDateEpoch: context.sourceDateEpoch });
    const path = written.path;
    await context.layout.store.putBlob(context.layout.repository, written.descriptor, () => createReadStream(path));
  } finally {
    if (written !== undefined) await rm(written.path, { force: true });
  }
  await context.storage.commit(working, written.diffId);
  context.step('layer', `${written.descriptor.digest} (${written.descriptor.size} bytes, ${written.paths.length} paths)`);
  return { descriptor: written.descriptor, diffId: written.diffId, history: { created: context.created, created_by: `restack build ${context.layer}: ${createdBy}` } };
}

async function tarballMediaType(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const { buffer } = await handle.read(Buffer.alloc(4), 0, 4, 0);
    if (buffer[0] === 0x1f && buffer[1] === 0x8b) return MediaType.ociLayerGzip;
    if (buffer.readUInt32LE(0) === 0xfd2fb528) return MediaType.ociLayerZstd;
    return MediaType.ociLayerTar;
  } finally {
    await handle.close();
  }
}

/**
 * A `from: tar` rootfs as the layer's first own blob: unpacked onto an empty rootfs and written
 * back through the layer writer, so the blob is reproducible whatever the tarball's order,
 * timestamps or compression.
 */
export async function tarballLayer(context: OwnLayerContext, tarball: AcquiredImport): Promise<OwnLayer | undefined> {
  context.step('rootfs', `unpack ${tarball.spec.written}`);
  const working = await context.storage.createWorking([], context.layer);
  try {
    await unpackLayer(createReadStream(tarball.hostPath), {
      root: working.rootfs,
      mediaType: await tarballMediaType(tarball.hostPath),
      digest: `sha256:${tarball.contentHash}`,
      idShift: context.identity.idShift,
      whiteouts: 'apply',
    });
    return await storeLayer(context, working, `from tar ${tarball.spec.written}`);
  } catch (error) {
    await context.storage.discard(working);
    throw error;
  }
}

export interface ContainerStep {
  /** Base, applied and earlier own layers: the rootfs the step starts from. */
  chain: readonly LayerSource[];
  imports: readonly AcquiredImport[];
  importsAt: ImportsLocation;
  /** The `run:` script; undefined when only imports with dest change the rootfs. */
  script: string | undefined;
  /** The `generate_labels` script, run after `run` in the same container. */
  labelScript: string | undefined;
  binds: readonly BindSpec[];
  environment: Readonly<Record<string, string>>;
  shellOnFail: boolean;
}

const labelsMount = '/stacker/oci-labels';

async function bindMounts(context: OwnLayerContext, binds: readonly BindSpec[]): Promise<BindMount[]> {
  const mounts: BindMount[] = [];
  for (const bind of binds) {
    const info = await stat(bind.source).catch(() => undefined);
    if (info === undefined) {
      throw new LayerBuildError('BIND_MISSING', context.layer, `layer ${context.layer}: bind source ${bind.source} does not exist`, `create it, or fix ${context.layer}.binds (relative paths are taken from the recipe's directory)`);
    }
    mounts.push({ source: bind.source, dest: bind.dest, readOnly: false, isFile: !info.isDirectory() });
  }
  return mounts;
}

/** A directory the container's root may write to: where generate_labels leaves its files. */
async function writableDirectory(path: string, identity: BuildIdentity): Promise<void> {
  await rm(path, { recursive: true, force: true });
  await mkdir(path, { recursive: true });
  await chmod(path, 0o755);
  await lchown(path, identity.idShift.uid, identity.idShift.gid);
}

async function readLabels(dir: string): Promise<Record<string, string>> {
  const labels: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    if ((await stat(join(dir, name))).isFile()) labels[name] = await readFile(join(dir, name), 'utf8');
  }
  return labels;
}

/**
 * The layer's own work: a writable rootfs over the chain, imports with dest copied in, `run:`
 * (then generate_labels) in an unprivileged container with the other imports read-only, and the
 * changes written as one blob. A failed run keeps the rootfs and says where it is.
 */
export async function containerLayer(context: OwnLayerContext, step: ContainerStep): Promise<{ own: OwnLayer | undefined; labels: Record<string, string> }> {
  const importsDir = join(context.workDir, 'imports', context.layer);
  const labelsDir = join(context.workDir, 'labels', context.layer);
  const needsContainer = step.script !== undefined || step.labelScript !== undefined;
  if (needsContainer) {
    await stageImports(context.layer, step.imports, importsDir, context.identity.idShift);
    // a read-only import mount at /stacker must already hold the labels' mount point
    if (step.labelScript !== undefined && step.importsAt === '/stacker') await mkdir(join(importsDir, 'oci-labels'));
    if (step.labelScript !== undefined) await writableDirectory(labelsDir, context.identity);
  }
  const binds = await bindMounts(context, step.binds);
  context.step('rootfs', `${step.chain.length} layer${step.chain.length === 1 ? '' : 's'}`);
  const working = await context.storage.createWorking(step.chain, context.layer);
  try {
    await placeDestImports(context.layer, step.imports, working.rootfs, context.identity.idShift);
    if (needsContainer) {
      context.step('run', `in ${working.rootfs}`);
      const result = await runInContainer({
        layer: context.layer,
        rootfs: working.rootfs,
        script: [step.script, step.labelScript].filter((part) => part !== undefined).join('\n'),
        identity: context.identity,
        lxcPath: join(context.workDir, 'lxc'),
        imports: { source: importsDir, at: step.importsAt },
        binds: step.labelScript === undefined ? binds : [...binds, { source: labelsDir, dest: labelsMount, readOnly: false, isFile: false }],
        environment: step.environment,
        onLine: (line) => context.output(line.slice(context.layer.length + 2)),
        shellOnFail: step.shellOnFail,
      });
      if (!result.ok) {
        const kept = await context.storage.discard(working, { keep: true });
        throw new LayerBuildError(
          'RUN_FAILED',
          context.layer,
          result.message,
          'fix the run step and build again; the kept rootfs shows the state it failed in (--shell-fail opens a shell in the container when run fails)',
          { exitCode: result.exitCode, lastLines: result.lastLines, ...(kept === undefined ? {} : { keptRootfs: kept }) },
        );
      }
    }
    const labels = step.labelScript === undefined ? {} : await readLabels(labelsDir);
    const what = [step.script === undefined ? undefined : 'run', step.imports.some((item) => item.spec.dest !== undefined) ? 'imports' : undefined].filter(Boolean).join(', ');
    return { own: await storeLayer(context, working, what || 'generate_labels'), labels };
  } catch (error) {
    if (!(error instanceof LayerBuildError && error.code === 'RUN_FAILED')) await context.storage.discard(working);
    throw error;
  }
}
