/**
 * The SLSA provenance (v0.2) restack attests for every image it builds or swaps: what
 * `cosign verify-attestation --type slsaprovenance` accepts, and what `restack verify` prints.
 */

export const slsaProvenanceType = 'https://slsa.dev/provenance/v0.2';
export const buildTypes = { build: 'https://restack.dev/build/v1', swap: 'https://restack.dev/swap/v1' } as const;

/** An input: the base, an applied dependency, or (for a swap) the image the swap started from. */
export interface Material {
  /** The reference as the recipe (or the swap) named it, e.g. `docker://host/python3:latest`. */
  ref: string;
  digest: string;
}

/** One dependency a swap replaced, on one platform. */
export interface DependencyChange {
  dependency: string;
  from: string;
  to: string;
  platform: string;
}

/** What is known about how an image was made, gathered by the engine. */
export interface ProvenanceFacts {
  /** The image's repository, `docker://host/repo`. */
  repository: string;
  /** The recipe layer the image is, and the digest of its recipe as recorded in the image (`restack.dev/recipe`). */
  recipe: { layer: string; digest: string } | undefined;
  materials: Material[];
  /** For a swap: the image it started from (`docker://host/repo@sha256:...`) and what it replaced. */
  swapped?: { image: string; changes: DependencyChange[] };
  startedOn: string;
  finishedOn: string;
}

export interface SlsaPredicate {
  builder: { id: string };
  buildType: string;
  invocation: {
    configSource: { uri?: string; digest?: Record<string, string>; entryPoint?: string };
    parameters: { image?: string; changes?: DependencyChange[] };
    environment: Record<string, string>;
  };
  metadata: {
    buildStartedOn: string;
    buildFinishedOn: string;
    completeness: { parameters: boolean; environment: boolean; materials: boolean };
    reproducible: boolean;
  };
  materials: { uri: string; digest: Record<string, string> }[];
}

function digestSet(digest: string): Record<string, string> {
  const [algorithm = 'sha256', hex = ''] = digest.split(':');
  return { [algorithm]: hex };
}

/** The distinct materials, in the order first seen. */
function distinct(materials: readonly Material[]): Material[] {
  const seen = new Set<string>();
  return materials.filter((material) => {
    const key = `${material.ref} ${material.digest}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The predicate: the builder (`builderId`, e.g. the builder image), the recipe layer and its
 * digest as the config source, every input with its digest as materials, and for a swap the
 * dependency changes as parameters. Builds and swaps are reproducible: the same inputs give the
 * same digest (design.md, "Determinism").
 */
export function slsaPredicate(facts: ProvenanceFacts, builderId: string, environment: Record<string, string>): SlsaPredicate {
  return {
    builder: { id: builderId },
    buildType: facts.swapped === undefined ? buildTypes.build : buildTypes.swap,
    invocation: {
      configSource:
        facts.recipe === undefined ? {} : { uri: facts.repository, digest: digestSet(facts.recipe.digest), entryPoint: facts.recipe.layer },
      parameters: facts.swapped === undefined ? {} : { image: facts.swapped.image, changes: facts.swapped.changes },
      environment,
    },
    metadata: {
      buildStartedOn: facts.startedOn,
      buildFinishedOn: facts.finishedOn,
      completeness: { parameters: true, environment: false, materials: true },
      reproducible: true,
    },
    materials: distinct(facts.materials).map((material) => ({ uri: material.ref, digest: digestSet(material.digest) })),
  };
}
