import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { crdReference, customResourceDefinitions } from './crd.ts';

const crdDirs = ['crds', 'config/crd', 'charts/restack/crds'];

/** Files of config/ the chart ships as they are (Helm reads no file outside its chart), by the copy's path. */
const chartCopies = {
  'charts/restack/files/build-pods-policy.yaml': 'config/admission/build-pods-policy.yaml',
  'charts/restack/files/restack-build.json': 'config/seccomp/restack-build.json',
} as const;

/** Every generated file, by path from the repository root, with its content. */
export function generatedFiles(root = join(import.meta.dirname, '..', '..')): Map<string, string> {
  const files = new Map<string, string>();
  for (const crd of customResourceDefinitions()) {
    const name = String((crd['metadata'] as { name: string }).name).split('.')[0];
    const text = `# Generated from src/operator/resources.ts by npm run generate; do not edit.\n${stringify(crd, { lineWidth: 0 })}`;
    // Copies, not references: kustomize loads no file outside a base, and Helm none outside its chart.
    for (const dir of crdDirs) files.set(`${dir}/${name}.yaml`, text);
  }
  files.set('docs/crd-reference.md', `${crdReference()}\n`);
  for (const [copy, source] of Object.entries(chartCopies)) files.set(copy, readFileSync(join(root, source), 'utf8'));
  return files;
}
