import { z } from 'zod';

/**
 * The stacker.yaml language as zod schemas: the single source of the recipe types and of their
 * validation. Field rules follow stacker (pkg/types/layer.go); `apply` is restack's extension.
 */

export const baseTypes = ['docker', 'oci', 'tar', 'built', 'scratch'] as const;
export type BaseType = (typeof baseTypes)[number];

/** Describes a YAML value for messages: `a number (5)`, `a list`, `nothing`. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') return `a string ("${value.length > 40 ? `${value.slice(0, 40)}...` : value}")`;
  // YAML 1.1 (stacker's dialect) reads y, n, yes, no, on, off as booleans.
  if (typeof value === 'boolean') return `a boolean (${String(value)}; quote the value if you meant text, as y/n/yes/no/on/off are booleans in YAML 1.1)`;
  return `a ${typeof value} (${String(value)})`;
}

const expected = (what: string) => (issue: { input?: unknown }) => `expected ${what}, got ${describeValue(issue.input)}`;

const text = (what = 'a string') => z.string({ error: expected(what) });
const nonEmptyText = (what: string) => text(what).min(1, { error: `cannot be empty; give ${what}` });

/** A scalar where stacker wants a string: YAML numbers and booleans become their text, as in Go's yaml.v2. */
const scalarText = z
  .union([z.string(), z.number(), z.boolean(), z.null()], { error: expected('a string') })
  .transform((value) => (value === null ? '' : String(value)));

const stringMap = z.record(z.string(), scalarText, { error: expected('a map of names to strings') });
const stringList = z.array(text(), { error: expected('a list of strings') });
const stringOrList = z.union([z.string(), z.array(text())], { error: expected('a string or a list of strings') });

export const sha256Hex = /^[a-fA-F0-9]{64}$/;

/** Stacker ignores unknown keys in an import map; restack warns about them (see parse.ts). */
export const importKeys = ['path', 'hash', 'dest', 'mode', 'uid', 'gid'];
export const importObjectSchema = z.looseObject(
  {
    path: nonEmptyText('the file, directory or URL to import'),
    hash: text()
      .regex(sha256Hex, { error: 'must be the sha256 of the file as 64 hex characters (sha256sum FILE)' })
      .optional(),
    dest: text()
      .refine((dest) => dest.startsWith('/'), { error: 'must be an absolute path inside the image, such as /usr/bin/tool' })
      .optional(),
    mode: z.number({ error: expected('a file mode as a number, such as 0644') }).int().nonnegative().optional(),
    uid: z.number({ error: expected('a numeric uid') }).int().nonnegative({ error: 'cannot be negative' }).optional(),
    gid: z.number({ error: expected('a numeric gid') }).int().nonnegative({ error: 'cannot be negative' }).optional(),
  },
  { error: expected('a map with path, hash, dest, mode, uid, gid') },
);
export type ImportObject = z.output<typeof importObjectSchema>;

const importsSchema = z.union([z.string(), z.array(z.union([z.string(), importObjectSchema], { error: expected('a path or a map with path and hash') }))], {
  error: expected('a path or a list of paths and {path, hash, dest, mode, uid, gid} maps'),
});

const bindString = text().refine((bind) => {
  const words = bind.trim().split(/\s+/);
  return words.length === 1 ? words[0] !== '' : words.length === 3 && words[1] === '->';
}, { error: 'a bind is "PATH" or "SOURCE -> DEST"' });
const bindObject = z.strictObject({ source: nonEmptyText('the host path to bind'), dest: text().optional() });
const bindsSchema = z.array(z.union([bindString, bindObject], { error: expected('"PATH", "SOURCE -> DEST" or {source, dest}') }), {
  error: expected('a list of binds'),
});

export const fromSchema = z
  .strictObject(
    {
      type: z.enum(baseTypes, { error: `must be one of ${baseTypes.join(', ')}` }),
      url: nonEmptyText('the base image URL').optional(),
      tag: nonEmptyText('the name of a layer built earlier').optional(),
      insecure: z.boolean({ error: expected('true or false') }).optional(),
    },
    { error: expected('a map with type and url (or tag for built)') },
  )
  .superRefine((from, ctx) => {
    const urlExample: Partial<Record<BaseType, string>> = { docker: 'docker://host/repo:tag', oci: 'DIR:TAG', tar: 'a path or URL of a rootfs tarball' };
    const example = urlExample[from.type];
    if (example !== undefined && from.url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: `is required for type ${from.type}: ${example}` });
    }
    if (from.type === 'built' && from.tag === undefined) {
      ctx.addIssue({ code: 'custom', path: ['tag'], message: 'is required for type built: the name of the layer to build on' });
    }
    // Stacker hands docker URLs to containers/image, which also reads oci: layouts.
    if (from.type === 'docker' && from.url !== undefined && !from.url.startsWith('docker://') && !from.url.startsWith('oci:')) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: `"${from.url}" is not an image URL; write docker://host/repository:tag or oci:DIR:TAG` });
    }
  });
export type From = z.output<typeof fromSchema>;

/** `docker://...`, `oci:DIR:TAG`, or a layer name of this recipe. */
const applyEntry = nonEmptyText('an image URL (docker://... or oci:DIR:TAG) or a layer name').refine(
  (entry) => entry.startsWith('docker://') ? entry.length > 'docker://'.length : entry.startsWith('oci:') ? /^oci:.+:[^:/]+$/.test(entry) : !/\s|:\/\//.test(entry),
  { error: 'must be docker://host/repository:tag, oci:DIR:TAG, or the name of another layer of this recipe' },
);

const goRegexList = z.array(
  text().refine((pattern) => {
    try {
      new RegExp(`^${pattern}$`);
      return true;
    } catch {
      return false;
    }
  }, { error: 'is not a valid regular expression' }),
  { error: expected('a list of regular expressions') },
);

const layerShape = {
  from: fromSchema,
  imports: importsSchema.optional(),
  import: importsSchema.nullable().optional(),
  overlay_dirs: z
    .array(z.strictObject({ source: nonEmptyText('a host directory'), dest: text().optional() }), { error: expected('a list of {source, dest}') })
    .optional(),
  run: stringOrList.optional(),
  generate_labels: stringOrList.optional(),
  cmd: stringOrList.nullable().optional(),
  entrypoint: stringOrList.nullable().optional(),
  full_command: stringOrList.nullable().optional(),
  environment: stringMap.optional(),
  labels: stringMap.optional(),
  annotations: stringMap.optional(),
  build_env: stringMap.optional(),
  build_env_passthrough: goRegexList.optional(),
  volumes: stringList.optional(),
  working_dir: scalarText.optional(),
  runtime_user: scalarText.optional(),
  build_only: z.boolean({ error: expected('true or false') }).optional(),
  binds: bindsSchema.optional(),
  os: nonEmptyText('an operating system such as linux').optional(),
  arch: nonEmptyText('an architecture such as amd64 or arm64').optional(),
  apply: z
    .array(applyEntry, { error: expected('a list of image URLs or layer names') })
    .superRefine((entries, ctx) => {
      // provenance and swaps tell applied inputs apart by reference: one reference, one slice
      entries.forEach((entry, index) => {
        const first = entries.indexOf(entry);
        if (first < index) ctx.addIssue({ code: 'custom', path: [index], message: `"${entry}" is applied twice (also entry ${first}); apply each image once` });
      });
    })
    .optional(),
};

export const layerKeys = Object.keys(layerShape);
export const fromKeys = ['type', 'url', 'tag', 'insecure'];

export const layerSchema = z.strictObject(layerShape, { error: expected('a map of directives (from, run, ...)') });
export type Layer = z.output<typeof layerSchema>;

export const buildConfigSchema = z.strictObject(
  { prerequisites: z.array(nonEmptyText('the path of another recipe'), { error: expected('a list of recipe paths') }).optional() },
  { error: expected('a map with prerequisites') },
);
export type BuildConfig = z.output<typeof buildConfigSchema>;
