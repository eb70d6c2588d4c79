import type { V1Pod } from '@kubernetes/client-node';
import type { BuildPodSettings } from './build-policy.ts';
import { derivedName, labelValue } from './names.ts';
import { recordKeyFileVariable } from '../sign/record-key-file.ts';
import { signingKeyFiles } from './signing.ts';

/**
 * The build pod of an ImageBuild, in one place (kpack's habit): every security field is spelled
 * out with why it is there. docs/build-pod.md says which Pod Security level this meets and how the
 * admission policy under config/admission/ keeps a privileged-level namespace safe.
 */
export interface BuildPodInput {
  imageBuild: { name: string; namespace: string; uid: string };
  stackerfileName: string;
  /** ConfigMap the controller writes with the recipe under `stacker.yaml`. */
  recipeConfigMap: string;
  /** `docker://host/prefix` the images are pushed to. */
  push: string;
  tags: readonly string[];
  /** Values for the recipe's ${{NAME}} placeholders. */
  substitutions: Record<string, string>;
  insecure: boolean;
  /** A kubernetes.io/dockerconfigjson Secret with push credentials. */
  pushSecretName?: string;
  /** `docker://host/repository` shared as a build cache by every build of the Stackerfile. */
  cacheRepository?: string;
  /** A Secret with the signing key (cosign.key, optional cosign.password): the build signs what it pushes. */
  signingSecretName?: string;
  /** The build's own Secret with its Stackerfile's layer record key (recordKeySecretName); none: the build records no changes. */
  recordKeySecretName?: string;
  /** Image, resources, deadline and placement: the Stackerfile's spec.builder over the operator's defaults (build-policy.ts). */
  settings: BuildPodSettings;
}

/**
 * The seccomp profile of build pods, relative to the kubelet's seccomp directory
 * (/var/lib/kubelet/seccomp/restack/build.json): containerd's default plus pivot_root, which LXC
 * needs and RuntimeDefault denies even to holders of CAP_SYS_ADMIN. config/seccomp/ holds it; the
 * chart's DaemonSet installs it on nodes; the admission policy requires exactly this profile.
 */
export const buildSeccompProfile = 'restack/build.json';

export const buildPodLabels = {
  component: 'app.kubernetes.io/component',
  imageBuild: 'restack.dev/imagebuild',
  stackerfile: 'restack.dev/stackerfile',
} as const;

const recipeMount = '/restack/recipe';
const terminationLog = '/dev/termination-log';
const storageMount = '/var/lib/restack';
/** The build's output layout in the pod: provenance names a build_only layer by its ref there. */
export const buildPodLayout = `${storageMount}/oci`;
const authMount = '/restack/auth';
const signingMount = '/restack/signing';
const recordKeyMount = '/restack/layer-record';
/** The key's entry in the build's record key Secret, and its file name in the pod. */
export const recordKeyEntry = 'layer-record.key';

export function buildPodName(imageBuild: string): string {
  return derivedName(imageBuild, '-build');
}

export function recipeConfigMapName(imageBuild: string): string {
  return derivedName(imageBuild, '-recipe');
}

export function recordKeySecretName(imageBuild: string): string {
  return derivedName(imageBuild, '-record-key');
}

export function buildPod(input: BuildPodInput): V1Pod {
  const { imageBuild, settings } = input;
  const args = [
    'build',
    '--file', `${recipeMount}/stacker.yaml`,
    '--storage', settings.storage,
    '--roots-dir', `${storageMount}/roots`,
    '--oci-dir', buildPodLayout,
    // A tenant's recipe reads no file of the pod's beyond its own (the mounted push Secret, say).
    '--recipe-dir-only',
    '--push', input.push,
    ...input.tags.flatMap((tag) => ['--tag', tag]),
    ...Object.entries(input.substitutions).flatMap(([key, value]) => ['--substitute', `${key}=${value}`]),
    ...(input.insecure ? ['--insecure'] : []),
    ...(input.cacheRepository === undefined ? [] : ['--cache-repo', input.cacheRepository]),
    // The provenance names the builder image as the builder.
    ...(input.signingSecretName === undefined ? [] : ['--sign-key', `${signingMount}/${signingKeyFiles.key}`, '--builder-id', `docker://${settings.image}`]),
    // Without its Stackerfile's key the build records nothing (rather than make a key in its HOME no swap knows).
    ...(input.recordKeySecretName === undefined ? ['--no-layer-record-key'] : []),
    '--termination-log', terminationLog,
    '--json',
  ];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: buildPodName(imageBuild.name),
      namespace: imageBuild.namespace,
      labels: {
        [buildPodLabels.component]: 'restack-build',
        [buildPodLabels.imageBuild]: labelValue(imageBuild.name),
        [buildPodLabels.stackerfile]: labelValue(input.stackerfileName),
      },
      ownerReferences: [
        { apiVersion: 'restack.dev/v1alpha1', kind: 'ImageBuild', name: imageBuild.name, uid: imageBuild.uid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      restartPolicy: 'Never',
      // spec.builder.timeout: the kubelet stops the pod after this long, and the build fails saying so.
      activeDeadlineSeconds: settings.activeDeadlineSeconds,
      ...(settings.nodeSelector === undefined ? {} : { nodeSelector: settings.nodeSelector }),
      ...(settings.tolerations === undefined ? {} : { tolerations: settings.tolerations }),
      // A user namespace: uid 0 in the pod is an unprivileged id range on the node, so the
      // capabilities below are namespaced and the build's root is nobody outside the pod.
      hostUsers: false,
      // No service account token: the build talks to the registry, never to the API server.
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [
        {
          name: 'build',
          image: settings.image,
          command: ['restack'],
          args,
          env: [
            { name: 'HOME', value: `${storageMount}/home` },
            ...(input.pushSecretName === undefined ? [] : [{ name: 'REGISTRY_AUTH_FILE', value: `${authMount}/config.json` }]),
            // The key's password stays out of the pod spec and off the disk: an env var from the Secret.
            ...(input.signingSecretName === undefined
              ? []
              : [{ name: 'COSIGN_PASSWORD', valueFrom: { secretKeyRef: { name: input.signingSecretName, key: signingKeyFiles.password, optional: true } } }]),
            ...(input.recordKeySecretName === undefined ? [] : [{ name: recordKeyFileVariable, value: `${recordKeyMount}/${recordKeyEntry}` }]),
          ],
          // The builder writes its compact result (outputs and digests, or the failure) here
          // (src/engine/build/result-message.ts); the log's tail stands in if it writes nothing.
          terminationMessagePath: terminationLog,
          terminationMessagePolicy: 'FallbackToLogsOnError',
          securityContext: {
            // Root inside the pod's user namespace: unpacking layers keeps their owners.
            runAsUser: 0,
            runAsGroup: 0,
            runAsNonRoot: false,
            privileged: false,
            allowPrivilegeEscalation: false,
            // Mounting overlayfs (userxattr) and the build container's /proc needs CAP_SYS_ADMIN,
            // which hostUsers: false confines to mounts the pod's own namespaces own.
            capabilities: { add: ['SYS_ADMIN'], drop: ['NET_RAW'] },
            // A fresh procfs for the build container can only be mounted over a /proc that is not
            // partly masked (the kernel refuses to reveal less than is visible); allowed with hostUsers: false.
            procMount: 'Unmasked',
            // The runtime's default allows mount and unshare to holders of CAP_SYS_ADMIN but never
            // pivot_root, which LXC needs: the node's restack/build.json adds it, nothing more.
            seccompProfile: { type: 'Localhost', localhostProfile: buildSeccompProfile },
            // The default AppArmor profile of container runtimes denies mount(2) outright.
            appArmorProfile: { type: 'Unconfined' },
          },
          resources: settings.resources,
          volumeMounts: [
            { name: 'recipe', mountPath: recipeMount, readOnly: true },
            // Overlay storage and the output layout: an emptyDir, so nothing outlives the pod
            // and no hostPath is needed.
            { name: 'storage', mountPath: storageMount },
            ...(input.pushSecretName === undefined ? [] : [{ name: 'push-auth', mountPath: authMount, readOnly: true }]),
            ...(input.signingSecretName === undefined ? [] : [{ name: 'signing-key', mountPath: signingMount, readOnly: true }]),
            ...(input.recordKeySecretName === undefined ? [] : [{ name: 'layer-record-key', mountPath: recordKeyMount, readOnly: true }]),
          ],
        },
      ],
      volumes: [
        { name: 'recipe', configMap: { name: input.recipeConfigMap } },
        // Bounded (limits.ephemeral-storage, else the operator's storageSizeLimit): the kubelet evicts a build that fills it.
        { name: 'storage', emptyDir: settings.storageSizeLimit === undefined ? {} : { sizeLimit: settings.storageSizeLimit } },
        ...(input.pushSecretName === undefined
          ? []
          : [{ name: 'push-auth', secret: { secretName: input.pushSecretName, items: [{ key: '.dockerconfigjson', path: 'config.json' }] } }]),
        // Only the key file: the password comes through the environment.
        ...(input.signingSecretName === undefined
          ? []
          : [{ name: 'signing-key', secret: { secretName: input.signingSecretName, items: [{ key: signingKeyFiles.key, path: signingKeyFiles.key }], defaultMode: 0o400 } }]),
        // Owner-only, as the builder requires of a record key file: root in the pod reads it.
        ...(input.recordKeySecretName === undefined
          ? []
          : [{ name: 'layer-record-key', secret: { secretName: input.recordKeySecretName, items: [{ key: recordKeyEntry, path: recordKeyEntry }], defaultMode: 0o400 } }]),
      ],
    },
  };
}
