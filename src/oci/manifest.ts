import type { z } from 'zod';
import { OciError } from './errors.ts';
import { isImageManifestType, isIndexType, isSchema1, MediaType } from './mediatypes.ts';
import { imageIndexSchema, imageManifestSchema, type ImageIndex, type ImageManifest } from './types.ts';

/** Registries refuse manifest bodies above 4 MiB (distribution spec); restack refuses to read or write them too. */
export const maxManifestBytes = 4 * 1024 * 1024;

const schema1Hint = 'Docker schema1 manifests are deprecated and unsupported; re-push the image with a current tool (for example `skopeo copy --format v2s2`)';

export function manifestTooLarge(size: number, source: string): OciError {
  return new OciError(
    'MANIFEST_TOO_LARGE',
    `${source}: manifest is ${size} bytes, more than the 4 MiB (${maxManifestBytes} bytes) limit`,
    'registries refuse manifests over 4 MiB; split the image into fewer layers or move large annotations into a blob',
  );
}

export function assertManifestSize(size: number, source: string): void {
  if (size > maxManifestBytes) throw manifestTooLarge(size, source);
}

/** Schema1 is named by its media type, or by `schemaVersion: 1` when a registry sends it as plain JSON. */
export function rejectSchema1(mediaType: string | undefined, source: string, schemaVersion?: unknown): void {
  if (schemaVersion === 1 || isSchema1(mediaType)) {
    throw new OciError('MANIFEST_UNSUPPORTED', `${source}: Docker schema1 manifest`, schema1Hint);
  }
}

/**
 * The media type of manifest bytes: the `mediaType` field when present, else the type the store
 * announced (OCI allows omitting the field), else inferred from the shape.
 */
function effectiveMediaType(json: Record<string, unknown>, announced: string | undefined, source: string): string {
  const field = typeof json['mediaType'] === 'string' ? json['mediaType'] : undefined;
  rejectSchema1(field, source, json['schemaVersion']);
  rejectSchema1(announced, source);
  if (field !== undefined) return field;
  if (announced !== undefined && announced !== '' && announced !== 'application/json' && announced !== 'application/octet-stream') return announced;
  return Array.isArray(json['manifests']) ? MediaType.ociIndex : MediaType.ociManifest;
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
}

/**
 * Parses and validates manifest or index bytes. Rejects schema1, oversized bodies, and any
 * media type other than OCI manifest/index and Docker schema2 manifest/manifest list.
 */
export function parseManifest(
  bytes: Uint8Array,
  announcedMediaType: string | undefined,
  source: string,
): { mediaType: string; manifest: ImageManifest | ImageIndex } {
  assertManifestSize(bytes.length, source);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    throw new OciError('MANIFEST_INVALID', `${source}: manifest is not valid UTF-8 JSON`, 'the store holds something that is not a manifest', { cause: error });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new OciError('MANIFEST_INVALID', `${source}: manifest is not a JSON object`);
  }
  const record = json as Record<string, unknown>;
  const mediaType = effectiveMediaType(record, announcedMediaType, source);
  const schema = isIndexType(mediaType) ? imageIndexSchema : isImageManifestType(mediaType) ? imageManifestSchema : undefined;
  if (schema === undefined) {
    throw new OciError(
      'MANIFEST_UNSUPPORTED',
      `${source}: media type "${mediaType}" is not an image manifest or index`,
      'restack reads OCI image manifests and indexes and Docker schema2 manifests and manifest lists',
    );
  }
  const parsed = schema.safeParse(record);
  if (!parsed.success) {
    throw new OciError('MANIFEST_INVALID', `${source}: ${mediaType} is malformed: ${describeIssues(parsed.error)}`);
  }
  return { mediaType, manifest: parsed.data };
}
