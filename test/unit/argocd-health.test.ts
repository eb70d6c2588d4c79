/**
 * The Argo CD health checks of docs/argocd/ run by a real Lua interpreter against objects whose
 * conditions come from the operator's own kstatus(): what Argo CD shows for each state. The
 * argocd-cm patch must carry the very same scripts.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { parse } from 'yaml';
import { kstatus } from '../../src/operator/conditions.ts';
import { requireProgram, startOrSkip } from '../services/service.ts';

const scripts = join(import.meta.dirname, '..', '..', 'docs', 'argocd');
const { service: lua, skip } = await startOrSkip(() => requireProgram('lua5.4', 'lua5.4'));

/** A JSON value as a Lua table constructor, the shape Argo CD hands a health script as `obj`. */
function luaValue(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (Array.isArray(value)) return `{${value.map(luaValue).join(', ')}}`;
  if (typeof value === 'object') return `{${Object.entries(value).map(([key, item]) => `[${JSON.stringify(key)}] = ${luaValue(item)}`).join(', ')}}`;
  return JSON.stringify(value);
}

interface Health {
  status: string;
  message: string;
}

/** Runs a health script as Argo CD does: a chunk with `obj` set, whose return value is the health. */
async function health(script: string, obj: unknown): Promise<Health> {
  const body = await readFile(join(scripts, script), 'utf8');
  const chunk = `obj = ${luaValue(obj)}\nlocal hs = (function()\n${body}\nend)()\nio.write(hs.status, "\\n", hs.message)`;
  const { stdout } = await execa(lua as string, ['-'], { input: chunk });
  const newline = stdout.indexOf('\n');
  return { status: stdout.slice(0, newline), message: stdout.slice(newline + 1) };
}

const stackerfile = (generation: number, status?: object) => ({
  apiVersion: 'restack.dev/v1alpha1',
  kind: 'Stackerfile',
  metadata: { name: 'app', namespace: 'team', generation },
  spec: { recipe: 'A: {from: {type: scratch}}' },
  ...(status === undefined ? {} : { status }),
});
const observed = (generation: number, state: Parameters<typeof kstatus>[0], reason: string, message: string) =>
  stackerfile(generation, { observedGeneration: generation, conditions: kstatus(state, reason, message).map((c) => ({ ...c, observedGeneration: generation })) });

describe('Argo CD health of a Stackerfile (docs/argocd/health-stackerfile.lua)', { skip }, () => {
  test('no status yet: Progressing', async () => {
    assert.equal((await health('health-stackerfile.lua', stackerfile(1))).status, 'Progressing');
  });
  test('Ready=True: Healthy, with the reason', async () => {
    assert.deepEqual(await health('health-stackerfile.lua', observed(2, 'Ready', 'Succeeded', '3 images')), { status: 'Healthy', message: 'Succeeded: 3 images' });
  });
  test('Reconciling=True: Progressing', async () => {
    assert.deepEqual(await health('health-stackerfile.lua', observed(2, 'Reconciling', 'Building', 'app-2-abcdef running')), { status: 'Progressing', message: 'Building: app-2-abcdef running' });
  });
  test('Stalled=True: Degraded, with the line-numbered error', async () => {
    const message = 'team/app.stacker.yaml:3:5: A.run: expected a string';
    assert.deepEqual(await health('health-stackerfile.lua', observed(2, 'Stalled', 'InvalidRecipe', message)), { status: 'Degraded', message: `InvalidRecipe: ${message}` });
  });
  test('stalled by spec.suspend: Suspended', async () => {
    assert.equal((await health('health-stackerfile.lua', observed(2, 'Stalled', 'Suspended', 'suspended'))).status, 'Suspended');
  });
  test('Ready=True for an older generation: Progressing until the operator catches up', async () => {
    const stale = { ...observed(2, 'Ready', 'Succeeded', '3 images'), metadata: { name: 'app', namespace: 'team', generation: 3 } };
    assert.deepEqual(await health('health-stackerfile.lua', stale), { status: 'Progressing', message: 'Waiting for the restack operator to observe generation 3' });
  });
});

describe('Argo CD health of an ImageBuild (docs/argocd/health-imagebuild.lua)', { skip }, () => {
  const imageBuild = (status?: object) => ({ apiVersion: 'restack.dev/v1alpha1', kind: 'ImageBuild', metadata: { name: 'app-2-abcdef' }, ...(status === undefined ? {} : { status }) });
  test('phase by phase', async () => {
    const seen = [];
    for (const phase of [undefined, 'Pending', 'Running', 'Succeeded', 'Failed']) {
      seen.push([phase, (await health('health-imagebuild.lua', imageBuild(phase === undefined ? undefined : { phase }))).status]);
    }
    assert.deepEqual(seen, [
      [undefined, 'Progressing'],
      ['Pending', 'Progressing'],
      ['Running', 'Progressing'],
      ['Succeeded', 'Healthy'],
      ['Failed', 'Degraded'],
    ]);
  });
  test('a failure shows the builder message', async () => {
    const message = 'layer A: run step failed (exit 2)\n  ./A/install: not found';
    assert.deepEqual(await health('health-imagebuild.lua', imageBuild({ phase: 'Failed', message })), { status: 'Degraded', message });
  });
});

test('docs/argocd/argocd-cm-patch.yaml carries both scripts verbatim, under the keys Argo CD reads', async () => {
  const patch = parse(await readFile(join(scripts, 'argocd-cm-patch.yaml'), 'utf8')) as { data: Record<string, string> };
  assert.deepEqual(patch.data, {
    'resource.customizations.health.restack.dev_Stackerfile': await readFile(join(scripts, 'health-stackerfile.lua'), 'utf8'),
    'resource.customizations.health.restack.dev_ImageBuild': await readFile(join(scripts, 'health-imagebuild.lua'), 'utf8'),
  });
});
