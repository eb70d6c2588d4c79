import { z } from 'zod';

/** OCI content descriptor. Unknown fields are kept so that re-serialising never drops data. */
export const descriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: z
    .looseObject({
      architecture: z.string(),
      os: z.string(),
      variant: z.string().optional(),
      'os.version': z.string().optional(),
      'os.features': z.array(z.string()).optional(),
    })
    .optional(),
  artifactType: z.string().optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;
export type Platform = NonNullable<Descriptor['platform']>;

export const imageManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageManifest = z.infer<typeof imageManifestSchema>;

export const imageIndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type ImageIndex = z.infer<typeof imageIndexSchema>;

export const historySchema = z.looseObject({
  created: z.string().optional(),
  created_by: z.string().optional(),
  author: z.string().optional(),
  comment: z.string().optional(),
  empty_layer: z.boolean().optional(),
});
export type HistoryEntry = z.infer<typeof historySchema>;

export const imageConfigSchema = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  config: z
    .looseObject({
      User: z.string().optional(),
      ExposedPorts: z.record(z.string(), z.object({})).optional(),
      Env: z.array(z.string()).optional(),
      Entrypoint: z.array(z.string()).nullable().optional(),
      Cmd: z.array(z.string()).nullable().optional(),
      Volumes: z.record(z.string(), z.object({})).optional(),
      WorkingDir: z.string().optional(),
      Labels: z.record(z.string(), z.string()).nullable().optional(),
      StopSignal: z.string().optional(),
    })
    .optional(),
  rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(z.string()) }),
  history: z.array(historySchema).optional(),
});
export type ImageConfig = z.infer<typeof imageConfigSchema>;

/** A manifest or index together with the exact bytes it was read from (digests are of bytes, not of JSON). */
export interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
  manifest: ImageManifest | ImageIndex;
}

export function isIndex(manifest: ImageManifest | ImageIndex): manifest is ImageIndex {
  return 'manifests' in manifest;
}

/** One platform's image, resolved: manifest and config with their descriptors and bytes. */
export interface ResolvedImage {
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  manifestBytes: Uint8Array;
  configBytes: Uint8Array;
  config: ImageConfig;
}
