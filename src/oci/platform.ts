import { OciError } from './errors.ts';
import type { Descriptor, Platform } from './types.ts';

const goArchitectures: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform images are picked for when none is asked: this host's architecture on linux, else linux/amd64. */
export function defaultPlatform(arch: string = process.arch): Platform {
  return { os: 'linux', architecture: goArchitectures[arch] ?? 'amd64' };
}

export function formatPlatform(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant === undefined ? '' : `/${platform.variant}`}`;
}

/** `os/arch[/variant]`, as docker and skopeo spell it. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, ...rest] = text.split('/');
  if (os === undefined || os === '' || architecture === undefined || architecture === '' || variant === '' || rest.length > 0) {
    throw new OciError('PLATFORM_NOT_FOUND', `platform "${text}" is not os/arch[/variant]`, 'write a platform like linux/amd64 or linux/arm64/v8');
  }
  return { os, architecture, ...(variant === undefined ? {} : { variant }) };
}

/** Attestation manifests sit in indexes as unknown/unknown: never an image to run. */
function isAttestation(platform: Platform): boolean {
  return platform.os === 'unknown' || platform.architecture === 'unknown';
}

/** arm64 without a variant means v8; any other missing variant matches only a missing variant. */
function sameVariant(wanted: Platform, offered: Platform): boolean {
  const normal = (platform: Platform) => platform.variant ?? (platform.architecture === 'arm64' ? 'v8' : undefined);
  return wanted.variant === undefined || normal(wanted) === normal(offered);
}

/**
 * Picks the manifest for a platform from an index's entries. Without a variant asked, the
 * first entry of the os and architecture wins (indexes list the preferred variant first).
 */
export function choosePlatform(entries: Descriptor[], wanted: Platform, source: string): Descriptor {
  const candidates = entries.filter((entry) => entry.platform !== undefined && !isAttestation(entry.platform));
  const match = candidates.find(
    (entry) => entry.platform !== undefined && entry.platform.os === wanted.os && entry.platform.architecture === wanted.architecture && sameVariant(wanted, entry.platform),
  );
  if (match !== undefined) return match;
  const offered = candidates.map((entry) => formatPlatform(entry.platform as Platform));
  throw new OciError(
    'PLATFORM_NOT_FOUND',
    `${source}: the index has no ${formatPlatform(wanted)} image`,
    offered.length === 0 ? 'the index lists no platform images' : `available platforms: ${offered.join(', ')}; ask for one of them`,
  );
}
