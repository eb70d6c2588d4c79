import { stringify } from 'yaml';
import { defaultPath } from '../../build/lxc-config.ts';
import type { ImageConfig, ImageManifest } from '../../oci/types.ts';
import type { Layer } from '../../stackerfile/schema.ts';
import { splitShellWords, ShellSyntaxError } from './shell-words.ts';

/** The manifest annotation holding the layer's recipe, with substituted values redacted. */
export const recipeAnnotation = 'restack.dev/recipe';
export const redacted = '<redacted>';

export interface ImageCommands {
  entrypoint?: string[];
  cmd?: string[];
}

export class CommandError extends Error {
  readonly field: 'cmd' | 'entrypoint' | 'full_command';
  constructor(field: 'cmd' | 'entrypoint' | 'full_command', message: string) {
    super(message);
    this.name = 'CommandError';
    this.field = field;
  }
}

function words(field: CommandError['field'], value: string | string[] | null | undefined): string[] | undefined {
  if (value === null || value === undefined) return undefined;
  if (Array.isArray(value)) return value;
  try {
    return splitShellWords(value);
  } catch (error) {
    if (error instanceof ShellSyntaxError) throw new CommandError(field, error.message);
    throw error;
  }
}

/**
 * Entrypoint and Cmd as stacker sets them: from the recipe only (the base's are not inherited), a
 * string shell-split; `full_command` is the whole command line, so it sets Entrypoint and clears Cmd.
 */
export function imageCommands(layer: Layer): ImageCommands {
  const full = words('full_command', layer.full_command);
  if (full !== undefined) return { entrypoint: full };
  const entrypoint = words('entrypoint', layer.entrypoint);
  const cmd = words('cmd', layer.cmd);
  return { ...(entrypoint === undefined ? {} : { entrypoint }), ...(cmd === undefined ? {} : { cmd }) };
}

/** SOURCE_DATE_EPOCH as RFC 3339 (whole seconds, UTC); the epoch itself when unset. */
export function createdTimestamp(sourceDateEpoch: number | undefined): string {
  return new Date((sourceDateEpoch ?? 0) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Replaces every user-supplied substitution value (longest first) so no secret reaches a published annotation. */
export function redact(text: string, values: readonly string[]): string {
  return [...values].filter((value) => value !== '').sort((a, b) => b.length - a.length).reduce((out, value) => out.replaceAll(value, redacted), text);
}

/**
 * The recipe of one layer as recorded in its image: the layer's parsed definition as YAML, after
 * substitution and redaction. Only this layer, so that an edit to another layer of the same file
 * does not change this image's digest.
 */
export function layerRecipeRecord(name: string, layer: Layer, substitutedValues: readonly string[]): string {
  return redact(stringify({ [name]: layer }), substitutedValues);
}

/** Env as the base had it, each recipe variable replacing the base's of the same name; a default PATH when none is set (as stacker). */
export function mergeEnvironment(base: readonly string[], recipe: Readonly<Record<string, string>>): string[] {
  const merged = [...base];
  for (const [name, value] of Object.entries(recipe)) {
    const entry = `${name}=${value}`;
    const existing = merged.findIndex((candidate) => candidate.slice(0, candidate.indexOf('=')) === name);
    if (existing >= 0) merged[existing] = entry;
    else merged.push(entry);
  }
  if (!merged.some((entry) => entry.startsWith('PATH='))) merged.push(`PATH=${defaultPath}`);
  return merged;
}

export interface ImageSettings {
  layer: Layer;
  commands: ImageCommands;
  /** Labels written by `generate_labels`; the recipe's `labels` win over them. */
  generatedLabels: Readonly<Record<string, string>>;
  created: string;
  recipeRecord: string;
}

/**
 * The composed image with the recipe's image settings applied: config (env, labels, volumes,
 * working dir, user, commands, created) and manifest annotations (the recipe's, the recipe record;
 * provenance, already written by compose, is never overridden).
 */
export function configureImage(image: { manifest: ImageManifest; config: ImageConfig }, settings: ImageSettings): { manifest: ImageManifest; config: ImageConfig } {
  const { layer } = settings;
  const { Entrypoint: _entrypoint, Cmd: _cmd, ...inherited } = image.config.config ?? {};
  const labels = { ...(inherited.Labels ?? {}), ...settings.generatedLabels, ...(layer.labels ?? {}) };
  const volumes = { ...(inherited.Volumes ?? {}), ...Object.fromEntries((layer.volumes ?? []).map((volume) => [volume, {}])) };
  const inner: NonNullable<ImageConfig['config']> = {
    ...inherited,
    Env: mergeEnvironment(inherited.Env ?? [], layer.environment ?? {}),
    ...(settings.commands.entrypoint === undefined ? {} : { Entrypoint: settings.commands.entrypoint }),
    ...(settings.commands.cmd === undefined ? {} : { Cmd: settings.commands.cmd }),
    ...(Object.keys(labels).length === 0 ? {} : { Labels: labels }),
    ...(Object.keys(volumes).length === 0 ? {} : { Volumes: volumes }),
    ...(layer.working_dir === undefined || layer.working_dir === '' ? {} : { WorkingDir: layer.working_dir }),
    ...(layer.runtime_user === undefined || layer.runtime_user === '' ? {} : { User: layer.runtime_user }),
  };
  const { author: _author, ...config } = image.config;
  const annotations = { ...(layer.annotations ?? {}), [recipeAnnotation]: settings.recipeRecord, ...(image.manifest.annotations ?? {}) };
  return {
    manifest: { ...image.manifest, annotations },
    config: { ...config, created: settings.created, config: inner },
  };
}
