import { z } from 'zod';
import {
  group,
  imageBuildSpecSchema,
  imageBuildStatusSchema,
  stackerfileSpecSchema,
  stackerfileStatusSchema,
  version,
} from './resources.ts';

type JsonSchema = { [key: string]: unknown };

/**
 * A zod schema as a Kubernetes structural OpenAPI v3 schema: no `additionalProperties: false`
 * (the API server prunes unknown fields instead), no JavaScript number limits.
 */
export function structuralSchema(schema: z.ZodType): JsonSchema {
  return clean(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }) as JsonSchema);
}

function clean(node: JsonSchema): JsonSchema {
  const result: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema') continue;
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'maximum' && value === Number.MAX_SAFE_INTEGER) || (key === 'minimum' && value === Number.MIN_SAFE_INTEGER)) continue;
    if (Array.isArray(value)) result[key] = value.map((item) => (isObject(item) ? clean(item) : item));
    else if (isObject(value)) result[key] = key === 'properties' ? mapValues(value, clean) : clean(value);
    else result[key] = value;
  }
  return result;
}

const isObject = (value: unknown): value is JsonSchema => typeof value === 'object' && value !== null && !Array.isArray(value);
const mapValues = (object: JsonSchema, f: (value: JsonSchema) => JsonSchema): JsonSchema =>
  Object.fromEntries(Object.entries(object).map(([key, value]) => [key, isObject(value) ? f(value) : value]));

interface KindDefinition {
  kind: string;
  plural: string;
  shortName: string;
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  columns: { name: string; type: string; jsonPath: string; description: string }[];
  /** CEL rules on the spec, checked by the API server. */
  specRules?: { rule: string; message: string }[];
}

const kinds: KindDefinition[] = [
  {
    kind: 'Stackerfile',
    plural: 'stackerfiles',
    shortName: 'sf',
    description: 'A stacker.yaml recipe built into images and kept current by restack.',
    spec: stackerfileSpecSchema,
    status: stackerfileStatusSchema,
    columns: [
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Whether every image is built and current.' },
      { name: 'Images', type: 'integer', jsonPath: '.status.imageCount', description: 'Published images.' },
      { name: 'Registry', type: 'string', jsonPath: '.spec.output.registry', description: 'Target registry.' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age.' },
    ],
    specRules: [
      { rule: 'has(self.recipe) != has(self.recipeFrom)', message: 'give exactly one of recipe and recipeFrom' },
      {
        rule: "!has(self.builder) || !has(self.builder.timeout) || duration(self.builder.timeout) > duration('0s')",
        message: 'builder.timeout must be a duration longer than 0s, e.g. 45m or 1h30m',
      },
    ],
  },
  {
    kind: 'ImageBuild',
    plural: 'imagebuilds',
    shortName: 'ib',
    description: 'One build or one swap of a Stackerfile, pinned to input digests: the audit trail.',
    spec: imageBuildSpecSchema,
    status: imageBuildStatusSchema,
    columns: [
      { name: 'Stackerfile', type: 'string', jsonPath: '.spec.stackerfileRef.name', description: 'The Stackerfile.' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Pending, Running, Succeeded or Failed.' },
      { name: 'Strategy', type: 'string', jsonPath: '.spec.strategy', description: 'Build or Swap.' },
      { name: 'Reason', type: 'string', jsonPath: '.spec.reason', description: 'Why it happened.' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age.' },
    ],
  },
];

export function customResourceDefinitions(): JsonSchema[] {
  return kinds.map((definition) => {
    const spec = structuralSchema(definition.spec);
    if (definition.specRules !== undefined) spec['x-kubernetes-validations'] = definition.specRules;
    return {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${definition.plural}.${group}` },
      spec: {
        group,
        names: {
          kind: definition.kind,
          listKind: `${definition.kind}List`,
          plural: definition.plural,
          singular: definition.kind.toLowerCase(),
          shortNames: [definition.shortName],
          categories: ['restack'],
        },
        scope: 'Namespaced',
        versions: [
          {
            name: version,
            served: true,
            storage: true,
            subresources: { status: {} },
            additionalPrinterColumns: definition.columns,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                description: definition.description,
                required: ['spec'],
                properties: {
                  apiVersion: { type: 'string' },
                  kind: { type: 'string' },
                  metadata: { type: 'object' },
                  spec,
                  status: structuralSchema(definition.status),
                },
              },
            },
          },
        ],
      },
    };
  });
}

/** A Markdown reference of every field, generated from the same schemas. */
export function crdReference(): string {
  const lines = ['# Custom resource reference', '', `Generated from \`src/operator/resources.ts\` by \`npm run generate\`; do not edit.`, ''];
  for (const definition of kinds) {
    lines.push(`## ${definition.kind} (\`${group}/${version}\`, short name \`${definition.shortName}\`)`, '', definition.description, '');
    for (const [part, schema] of [['spec', definition.spec], ['status', definition.status]] as const) {
      lines.push(`### ${part}`, '', '| field | type | default | description |', '|---|---|---|---|');
      for (const row of fieldRows(structuralSchema(schema), part)) lines.push(row);
      lines.push('');
    }
    for (const rule of definition.specRules ?? []) lines.push(`Rule on spec: ${rule.message} (\`${rule.rule}\`).`, '');
  }
  return lines.join('\n');
}

function fieldRows(schema: JsonSchema, path: string): string[] {
  const properties = isObject(schema['properties']) ? schema['properties'] : {};
  const rows: string[] = [];
  for (const [key, value] of Object.entries(properties)) {
    if (!isObject(value)) continue;
    const fieldPath = `${path}.${key}`;
    const items = isObject(value['items']) ? value['items'] : undefined;
    const type = value['enum'] !== undefined ? (value['enum'] as unknown[]).join(' \\| ') : items !== undefined ? `[]${String(items['type'])}` : String(value['type']);
    const fallback = value['default'] === undefined ? '' : `\`${JSON.stringify(value['default'])}\``;
    rows.push(`| \`${fieldPath}\` | ${type} | ${fallback} | ${String(value['description'] ?? '')} |`);
    rows.push(...fieldRows(value, fieldPath));
    if (items !== undefined) rows.push(...fieldRows(items, `${fieldPath}[]`));
  }
  return rows;
}
