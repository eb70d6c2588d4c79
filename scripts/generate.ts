// Writes the generated files: the CRDs (crds/, config/crd/, charts/restack/crds/) and docs/crd-reference.md, from
// src/operator/resources.ts, and the chart's copies of the admission policy and the seccomp profile from config/.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generatedFiles } from '../src/operator/generated.ts';

const root = join(import.meta.dirname, '..');
for (const [path, text] of generatedFiles()) {
  writeFileSync(join(root, path), text);
  console.log(`wrote ${path}`);
}
