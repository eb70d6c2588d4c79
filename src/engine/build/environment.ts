import { resolve } from 'node:path';
import type { Layer } from '../../stackerfile/schema.ts';

/** What stacker passes from the host's environment when the recipe names no build_env_passthrough. */
export const defaultPassthrough = ['ftp_proxy', 'http_proxy', 'https_proxy', 'no_proxy', 'FTP_PROXY', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'TERM'];

/**
 * The environment `run:` sees, as stacker builds it: host variables matching the passthrough
 * patterns (whole-name regexes), then `build_env`, then STACKER_LAYER_NAME. Empty values are left
 * out; PATH and HOME get defaults from the container config.
 */
export function buildEnvironment(layer: Layer, name: string, host: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const patterns = (layer.build_env_passthrough ?? defaultPassthrough).map((pattern) => new RegExp(`^(?:${pattern})$`));
  const environment: Record<string, string> = {};
  for (const key of Object.keys(host).sort()) {
    const value = host[key];
    if (value !== undefined && !/[\n\r]/.test(value) && patterns.some((pattern) => pattern.test(key))) environment[key] = value;
  }
  Object.assign(environment, layer.build_env ?? {});
  environment['STACKER_LAYER_NAME'] = name;
  return Object.fromEntries(Object.entries(environment).filter(([, value]) => value !== ''));
}

export interface BindSpec {
  /** Absolute host path (relative ones are taken from the recipe's directory). */
  source: string;
  /** Absolute container path. */
  dest: string;
}

/** `PATH`, `SOURCE -> DEST` or `{source, dest}`; dest defaults to the source path. */
export function bindSpecs(layer: Layer, recipeDir: string): BindSpec[] {
  return (layer.binds ?? []).map((bind) => {
    const [source, dest] =
      typeof bind === 'string'
        ? (() => {
            const words = bind.trim().split(/\s+/);
            return [words[0] as string, words[2] ?? (words[0] as string)];
          })()
        : [bind.source, bind.dest ?? bind.source];
    return { source: resolve(recipeDir, source), dest: dest.startsWith('/') ? dest : resolve(recipeDir, dest) };
  });
}
