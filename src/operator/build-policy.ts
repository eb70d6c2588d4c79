import { z } from 'zod';
import type { V1Toleration } from '@kubernetes/client-node';
import { durationPattern, resourcesSchema, tolerationSchema, type BuilderSpec } from './resources.ts';

/**
 * What the cluster admin decides for every build pod (the operator's flags, the chart's
 * buildPods values), and what a Stackerfile may choose within it: pure, so the Stackerfile
 * controller can refuse a spec before any pod exists and the pod executor applies the same rules.
 */
const duration = (example: string) => z.string().refine((text) => durationSeconds(text) !== undefined, `not a duration longer than 0s, e.g. ${example}`);

export const buildPodDefaultsSchema = z
  .object({
    timeout: duration('45m or 1h30m').default('1h').describe('spec.builder.timeout when a Stackerfile gives none'),
    startTimeout: duration('10m')
      .default('10m')
      .describe('how long a build pod may take to start its container (scheduling, image pull, sandbox, volumes) before its build fails'),
    resources: resourcesSchema.default({}),
    storageSizeLimit: z.string().min(1).optional().describe("the build storage emptyDir's sizeLimit when limits.ephemeral-storage is not set"),
    nodeSelector: z.record(z.string(), z.string()).default({}),
    tolerations: z.array(tolerationSchema).default([]),
  })
  .strict();
export type BuildPodDefaults = z.infer<typeof buildPodDefaultsSchema>;

export interface BuildPolicy {
  /** --builder-image: the image a Stackerfile without spec.builder.image gets. */
  builderImage: string;
  /** --allowed-builder-image: other images a Stackerfile may name in spec.builder.image. */
  allowedBuilderImages: readonly string[];
  defaults: BuildPodDefaults;
}

/** Why pod builds of a Stackerfile cannot run: a CamelCase reason and a message naming the field and the fix. */
export interface Refusal {
  reason: string;
  message: string;
}

/** Kubernetes from which `hostUsers: false` and `procMount` are honoured by default (user namespaces beta, on). */
export const minimumKubernetes = { major: 1, minor: 33 };

/** The server's major and minor version from /version ("1", "34+" as some distributions write it). */
export function parseServerVersion(info: { major: string; minor: string; gitVersion?: string }): { major: number; minor: number } | undefined {
  const major = Number.parseInt(info.major, 10);
  const minor = Number.parseInt(info.minor, 10);
  if (Number.isInteger(major) && Number.isInteger(minor)) return { major, minor };
  const match = /^v?(\d+)\.(\d+)/.exec(info.gitVersion ?? '');
  return match === null ? undefined : { major: Number(match[1]), minor: Number(match[2]) };
}

/** Refuses pod builds on a Kubernetes that may drop `hostUsers: false`: the pod would hold CAP_SYS_ADMIN in the host's user namespace. */
export function serverVersionRefusal(info: { major: string; minor: string; gitVersion?: string }): Refusal | undefined {
  const parsed = parseServerVersion(info);
  const shown = info.gitVersion ?? `${info.major}.${info.minor}`;
  const { major, minor } = minimumKubernetes;
  if (parsed !== undefined && (parsed.major > major || (parsed.major === major && parsed.minor >= minor))) return undefined;
  return {
    reason: 'KubernetesTooOld',
    message:
      `the API server is ${shown}: build pods need Kubernetes ${major}.${minor} or later, where hostUsers: false (a user namespace) is honoured by default; ` +
      'on an older server the field may be dropped and the pod would hold CAP_SYS_ADMIN as root of the node, so no build pod is created. ' +
      'Upgrade the cluster, or run the operator with --executor local (development only)',
  };
}

/** Seconds of a duration that matches durationPattern ("1h30m"); undefined for anything else or zero. */
export function durationSeconds(text: string): number | undefined {
  const match = durationPattern.exec(text);
  if (match === null || text === '') return undefined;
  const [hours, minutes, seconds] = match.slice(1).map((part) => (part === undefined ? 0 : Number.parseInt(part, 10)));
  const total = (hours ?? 0) * 3600 + (minutes ?? 0) * 60 + (seconds ?? 0);
  return total > 0 ? total : undefined;
}

/** What in a Stackerfile's spec.builder the pod executor cannot honour; undefined when builds may run. */
export function builderRefusal(policy: BuildPolicy, builder: BuilderSpec): Refusal | undefined {
  const image = builder.image;
  if (image !== undefined && image !== policy.builderImage && !policy.allowedBuilderImages.includes(image)) {
    const allowed = [policy.builderImage, ...policy.allowedBuilderImages].join(', ');
    return {
      reason: 'BuilderImageNotAllowed',
      message:
        `spec.builder.image ${image} is not an allowed builder image (allowed: ${allowed}): a build pod holds CAP_SYS_ADMIN in its user namespace, so the cluster admin chooses what runs there. ` +
        "Remove spec.builder.image to use the operator's builder, or ask the cluster admin to add it (--allowed-builder-image, chart value allowedBuilderImages)",
    };
  }
  if (builder.storage === 'btrfs') {
    return {
      reason: 'StorageNotSupported',
      message:
        'spec.builder.storage btrfs is not supported in build pods: their storage is an emptyDir, rarely on btrfs, and a pod has no loop device to make one. ' +
        'Use overlay (or auto, which is overlay in a build pod)',
    };
  }
  if (builder.timeout !== undefined && durationSeconds(builder.timeout) === undefined) {
    return { reason: 'InvalidTimeout', message: `spec.builder.timeout ${builder.timeout} is not a duration longer than 0s: write hours, minutes and seconds, e.g. 45m or 1h30m` };
  }
  return undefined;
}

/** What the build pod of a Stackerfile gets: its spec.builder over the operator's defaults. */
export interface BuildPodSettings {
  image: string;
  storage: 'overlay';
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  storageSizeLimit?: string;
  activeDeadlineSeconds: number;
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
}

/**
 * The settings of a build pod. Resources merge by resource name (the Stackerfile's win); the
 * operator's node selector wins over the Stackerfile's, so a tenant cannot move builds off the
 * nodes the cluster admin chose; tolerations add up. Call after builderRefusal found nothing.
 */
export function buildPodSettings(policy: BuildPolicy, builder: BuilderSpec): BuildPodSettings {
  const { defaults } = policy;
  const merged = (part: 'requests' | 'limits') => {
    const values = { ...defaults.resources[part], ...builder.resources?.[part] };
    return Object.keys(values).length === 0 ? {} : { [part]: values };
  };
  const resources = { ...merged('requests'), ...merged('limits') };
  const storageSizeLimit = resources.limits?.['ephemeral-storage'] ?? defaults.storageSizeLimit;
  const nodeSelector = { ...builder.nodeSelector, ...defaults.nodeSelector };
  const tolerations = [...defaults.tolerations, ...(builder.tolerations ?? [])];
  const timeout = builder.timeout ?? defaults.timeout;
  const activeDeadlineSeconds = durationSeconds(timeout);
  if (activeDeadlineSeconds === undefined) throw new Error(`timeout ${timeout} is not a duration longer than 0s`);
  return {
    image: builder.image ?? policy.builderImage,
    storage: 'overlay',
    resources,
    ...(storageSizeLimit === undefined ? {} : { storageSizeLimit }),
    activeDeadlineSeconds,
    ...(Object.keys(nodeSelector).length === 0 ? {} : { nodeSelector }),
    ...(tolerations.length === 0 ? {} : { tolerations }),
  };
}
