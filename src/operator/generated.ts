import { stringify } from 'yaml';
import { crdReference, customResourceDefinitions } from './crd.ts';

/** Every generated file, by path from the repository root, with its content. */
export function generatedFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const crd of customResourceDefinitions()) {
    const name = String((crd['metadata'] as { name: string }).name).split('.')[0];
    files.set(`crds/${name}.yaml`, `# Generated from src/operator/resources.ts by npm run generate; do not edit.\n${stringify(crd, { lineWidth: 0 })}`);
  }
  files.set('docs/crd-reference.md', `${crdReference()}\n`);
  return files;
}
