import { z } from 'zod';

/**
 * The custom resources of restack.dev/v1alpha1, defined once: these schemas give the TypeScript
 * types, validate what the controllers read, and generate the CRDs under crds/ (crd.ts).
 */
export const group = 'restack.dev';
export const version = 'v1alpha1';

const name = z.string().min(1).max(253);

export const conditionSchema = z
  .object({
    type: z.string().describe('Ready, Reconciling or Stalled (kstatus) and InputsAvailable on a Stackerfile; Succeeded on an ImageBuild.'),
    status: z.enum(['True', 'False', 'Unknown']),
    reason: z.string().describe('A CamelCase word for programs.'),
    message: z.string().describe('What happened, for people.'),
    lastTransitionTime: z.string().describe('When the status last changed (RFC 3339).'),
    observedGeneration: z.number().int().min(0).optional().describe('The generation this condition describes.'),
  })
  .describe('A Kubernetes condition.');
export type Condition = z.infer<typeof conditionSchema>;

export const updatePolicies = { apply: ['Swap', 'Rebuild'] as const, base: ['Rebuild', 'Ignore'] as const };

/** A Go-style duration of hours, minutes and seconds, as kubectl and Flux write them: 90s, 45m, 1h30m. */
export const durationPattern = /^([0-9]+h)?([0-9]+m)?([0-9]+s)?$/;

export const tolerationSchema = z
  .object({
    key: z.string().optional().describe('The taint key; empty with operator Exists matches every taint.'),
    operator: z.enum(['Exists', 'Equal']).optional().describe('Equal (default) or Exists.'),
    value: z.string().optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional().describe('The taint effect matched; empty matches all.'),
    tolerationSeconds: z.number().int().min(0).optional(),
  })
  .describe('A toleration, as in a pod spec.');

/** What a build pod asks for; Stackerfiles and the operator's --build-pod-defaults share it. */
export const resourcesSchema = z
  .object({
    requests: z.record(z.string(), z.string()).optional().describe('Quantities by resource name, e.g. {cpu: "1", memory: 2Gi}.'),
    limits: z.record(z.string(), z.string()).optional().describe('Quantities by resource name; limits.ephemeral-storage also caps the build storage emptyDir.'),
  })
  .describe('Resources of the build container.');

export const builderSchema = z
  .object({
    image: z
      .string()
      .optional()
      .describe("The builder image; default: the operator's --builder-image. Any other image must be one the cluster admin allowed (--allowed-builder-image), or the Stackerfile is Stalled."),
    storage: z
      .enum(['auto', 'overlay', 'btrfs'])
      .default('overlay')
      .describe('Storage driver of the builder. auto: btrfs when the storage directory is on btrfs, else overlay; build pods always use overlay (an emptyDir is rarely btrfs and pods have no loop devices), so btrfs is refused for them.'),
    cacheRepository: z
      .string()
      .min(1)
      .optional()
      .describe('A registry repository (host[:port]/repository) every build of this Stackerfile shares as a layer cache, with the push credentials; whoever can push there can choose what builds reuse (docs/build-cache.md).'),
    resources: resourcesSchema.optional().describe("Resources of the build pod, merged by resource name over the operator's defaults (--build-pod-defaults)."),
    timeout: z
      .string()
      .max(32)
      .regex(durationPattern)
      .optional()
      .describe("How long a build may run before it is stopped and failed (the pod's activeDeadlineSeconds), e.g. 45m or 1h30m; default: the operator's, 1h unless changed."),
    nodeSelector: z
      .record(z.string(), z.string())
      .optional()
      .describe("Node labels a build pod needs, added to the operator's (whose keys win)."),
    tolerations: z.array(tolerationSchema).optional().describe("Taints build pods tolerate, added to the operator's."),
  })
  .describe('How builds run.');
export type BuilderSpec = z.infer<typeof builderSchema>;

export const stackerfileSpecSchema = z
  .object({
    recipe: z.string().optional().describe('The stacker.yaml recipe text. Give this or recipeFrom.'),
    recipeFrom: z
      .object({
        configMapKeyRef: z
          .object({ name: name.describe('ConfigMap in the same namespace.'), key: z.string().min(1).describe('Key that holds the recipe.') })
          .describe('A key of a ConfigMap holding the recipe.'),
      })
      .optional()
      .describe('Where to read the recipe from, instead of recipe.'),
    substitutions: z.record(z.string(), z.string()).optional().describe('Values for ${{NAME}} placeholders in the recipe.'),
    output: z
      .object({
        // No scheme, no empty path segment, no trailing slash: every ref derived from it (<registry>/<name>) must be one the registry answers.
        registry: z
          .string()
          .regex(/^[^/\s]+(\/[^/\s]+)*$/, 'host[:port]/prefix, without a scheme, a trailing slash or an empty segment')
          .describe('Where images are pushed: host[:port]/prefix, without a scheme or a trailing slash; each layer goes to <registry>/<layer name>.'),
        tags: z.array(z.string().regex(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/)).min(1).default(['latest']).describe('Tags every image gets.'),
        pushSecretRef: z.object({ name }).optional().describe('A kubernetes.io/dockerconfigjson Secret with push credentials.'),
        insecure: z.boolean().default(false).describe('Use plain http for the registry.'),
        signing: z
          .object({
            keySecretRef: z
              .object({ name })
              .describe('A Secret in the same namespace with cosign.key (and cosign.password when the key has one), as `cosign generate-key-pair k8s://NAMESPACE/NAME` creates it.'),
          })
          .optional()
          .describe('Sign every image built or swapped, and attest its SLSA provenance, before its tags move (docs/signing.md).'),
      })
      .describe('The target registry.'),
    updates: z
      .object({
        schedule: z.string().optional().describe("How often inputs are checked for new digests (cron, seconds allowed); default: the operator's --default-schedule, every 5 minutes unless changed."),
        onApplyUpdate: z.enum(updatePolicies.apply).default('Swap').describe('When an applied dependency changes: Swap its layers in place (rebuild if unsafe), or always Rebuild.'),
        onBaseUpdate: z.enum(updatePolicies.base).default('Rebuild').describe('When a base image changes: Rebuild, or Ignore.'),
      })
      .default({ onApplyUpdate: 'Swap', onBaseUpdate: 'Rebuild' })
      .describe('How images are kept current.'),
    builder: builderSchema.default({ storage: 'overlay' }),
    history: z
      .object({
        succeeded: z.number().int().min(0).default(10).describe('Succeeded ImageBuilds to keep.'),
        failed: z.number().int().min(0).default(5).describe('Failed ImageBuilds to keep.'),
      })
      .default({ succeeded: 10, failed: 5 })
      .describe('How many finished ImageBuilds are kept.'),
    suspend: z.boolean().default(false).describe('Stop building and updating.'),
  })
  .describe('A stacker.yaml recipe, its target registry and its update policy.');
export type StackerfileSpec = z.infer<typeof stackerfileSpecSchema>;

export const inputSchema = z.object({
  ref: z.string().describe('The input image as the recipe names it.'),
  role: z.enum(['from', 'apply']).describe('from: a base; apply: a dependency whose layers are included.'),
  digest: z.string().optional().describe('The manifest digest it resolved to.'),
});

export const strategies = ['Build', 'Swap'] as const;
export const buildReasons = ['Initial', 'RecipeChange', 'BaseUpdate', 'ApplyUpdate', 'Manual'] as const;

export const stackerfileStatusSchema = z
  .object({
    observedGeneration: z.number().int().min(0).optional(),
    conditions: z.array(conditionSchema).optional(),
    imageCount: z.number().int().min(0).optional().describe('How many images are published (for kubectl get).'),
    latestImageBuild: z
      .string()
      .optional()
      .describe(
        'The newest ImageBuild this status records; one runs at a time. A swap is recorded once it is done: the ImageBuilds created after this one name it, in turn, in spec.previous.',
      ),
    lastRebuildRequest: z.string().optional().describe('The last value of the restack.dev/rebuild annotation acted on.'),
    images: z
      .array(
        z.object({
          name: z.string().describe('The layer name in the recipe.'),
          ref: z.string().describe('Where the image is published.'),
          digest: z.string().describe('Its current manifest digest.'),
          inputs: z.array(inputSchema).optional(),
          lastChange: z
            .object({
              strategy: z.enum(strategies),
              reason: z.enum(buildReasons),
              at: z.string(),
              imageBuild: z.string().optional(),
            })
            .optional(),
        }),
      )
      .optional()
      .describe('The published images with their inputs: the inventory.'),
  })
  .describe('Observed state, written by the operator only.');
export type StackerfileStatus = z.infer<typeof stackerfileStatusSchema>;

export const imageBuildSpecSchema = z
  .object({
    stackerfileRef: z.object({ name }).describe('The Stackerfile in the same namespace.'),
    strategy: z.enum(strategies).describe('Build runs the recipe; Swap replaces an applied dependency\'s layers in place.'),
    reason: z.enum(buildReasons).describe('Why this build or swap happened.'),
    recipeGeneration: z.number().int().min(0).optional().describe('The Stackerfile generation when the build was created.'),
    recipeDigest: z.string().optional().describe('The sha256 of the recipe text this build is of: it builds that text only, and ends superseded if the recipe changes before it runs.'),
    buildDigest: z
      .string()
      .optional()
      .describe('A digest of what is built: the recipe text, substitutions, output and the builder\'s image and storage. A Stackerfile edit that leaves it unchanged (history, schedule, suspend) starts no build.'),
    previous: z
      .string()
      .optional()
      .describe("The ImageBuild of the same Stackerfile this one follows (its status.latestImageBuild or the newest after it): the operator finds the builds its status does not record yet by this chain."),
    attempt: z.number().int().min(1).optional().describe('Which try at the same work this is (1 when absent): a failure that may pass on its own (status.retryable) is tried again with backoff.'),
    inputs: z.array(inputSchema).optional().describe('Inputs pinned to digests.'),
    images: z.array(z.string()).optional().describe('The layers to build or swap (default: all).'),
    cause: z.string().optional().describe('Why, in words: which inputs changed, or why a swap was refused and a rebuild chosen.'),
  })
  .describe('One build or one swap of a Stackerfile.');
export type ImageBuildSpec = z.infer<typeof imageBuildSpecSchema>;
/** An ImageBuild spec as planned: the controller adds the Stackerfile reference and what it pins. */
export type PlannedBuildSpec = Omit<ImageBuildSpec, 'stackerfileRef' | 'recipeGeneration' | 'recipeDigest' | 'buildDigest'>;

export const swapResults = ['Swapped', 'UpToDate', 'Refused'] as const;
export const swapRefusals = ['NoProvenance', 'BaseChanged', 'Inconsistent', 'FormatMismatch', 'Overlap', 'NotAnalysed', 'PlatformMissing', 'NotPublished'] as const;

export const phases = ['Pending', 'Running', 'Succeeded', 'Failed'] as const;

export const imageBuildStatusSchema = z
  .object({
    phase: z.enum(phases).optional(),
    podName: z.string().optional(),
    startTime: z.string().optional(),
    completionTime: z.string().optional(),
    outputs: z
      .array(
        z.object({
          name: z.string().describe('The layer name in the recipe.'),
          ref: z.string().describe('Where the image was published.'),
          digest: z.string().describe('Its manifest digest.'),
          before: z.string().optional().describe('On a swap: the digest the tag pointed at before.'),
          inputs: z.array(inputSchema).optional().describe('The inputs it was made from, with their digests (from its provenance).'),
        }),
      )
      .optional(),
    checks: z
      .array(
        z.object({
          image: z.string().describe('The layer name of the image swapped.'),
          dependency: z.string().describe('The applied input swapped in.'),
          from: z.string().describe('The digest of the dependency the image had.'),
          to: z.string().describe('The digest of the dependency swapped in.'),
          result: z.enum(swapResults),
          reason: z.enum(swapRefusals).optional().describe('Why the swap was refused.'),
          message: z.string().describe('What was checked, or why it was refused.'),
        }),
      )
      .optional()
      .describe('On a swap: each dependency checked in each image and the result; a refused swap is followed by a rebuild.'),
    conditions: z.array(conditionSchema).optional(),
    message: z.string().optional().describe('On failure: the failing step and its last lines; on a swap: what was checked.'),
    retryable: z.boolean().optional().describe('On failure: true when it may pass on its own (the registry did not answer or rate limited, the build pod was evicted); the Stackerfile then starts the next attempt after a backoff.'),
  })
  .describe('Observed state, written by the operator only.');
export type ImageBuildStatus = z.infer<typeof imageBuildStatusSchema>;
