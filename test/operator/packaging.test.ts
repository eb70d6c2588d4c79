import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { parse, parseAllDocuments } from 'yaml';
import { buildPodDefaults } from '../../src/cli/commands/operator.ts';
import { planRecipes } from '../../src/stackerfile/plan.ts';
import { describeDiagnostics, validateRecipe } from '../../src/operator/recipe-source.ts';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';

const root = join(import.meta.dirname, '..', '..');
const chart = join(root, 'charts', 'restack');
const operatorNamespace = 'restack-system';
const operatorUser = `system:serviceaccount:${operatorNamespace}:restack-operator`;

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

const documents = (text: string): KubeObject[] =>
  parseAllDocuments(text)
    .map((document) => document.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null);
const kinds = (objects: readonly KubeObject[]) => objects.map((object) => object.kind);
const findObject = (objects: readonly KubeObject[], kind: string): KubeObject => {
  const found = objects.find((object) => object.kind === kind);
  assert.ok(found, `no ${kind} among ${kinds(objects).join(', ')}`);
  return found;
};

/** One question to `kubectl auth can-i`: VERB RESOURCE[/NAME] [--subresource] in a namespace ('*': in all of them at once). */
interface Access {
  verb: string;
  resource: string;
  subresource?: string;
  namespace?: string;
}
const inNamespace = (namespace: string) => (access: Access): Access => ({ ...access, namespace });
/** The operator container's arguments in a Deployment. */
const operatorArgs = (deployment: KubeObject): string[] =>
  (deployment as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]?.args ?? [];
/** --build-pod-defaults of those arguments, as the operator reads it (a value it refuses throws). */
const buildPodDefaultsOf = (args: readonly string[]) => {
  const flag = '--build-pod-defaults=';
  const value = args.find((arg) => arg.startsWith(flag));
  assert.ok(value, `no ${flag} among ${args.join(' ')}`);
  return buildPodDefaults(value.slice(flag.length));
};

const describeAccess = (access: Access) =>
  `${access.verb} ${access.resource}${access.subresource === undefined ? '' : `/${access.subresource}`} in ${access.namespace ?? 'restack-builds'}`;

// Every call src/operator/ makes, in a build namespace or in its own namespace (the Lease).
/** The calls the operator makes in a namespace it watches. */
const inBuildNamespace: Access[] = [
  ...['list', 'watch'].map((verb) => ({ verb, resource: 'stackerfiles.restack.dev' })),
  ...['get', 'list', 'watch', 'create', 'delete'].map((verb) => ({ verb, resource: 'imagebuilds.restack.dev' })),
  ...['stackerfiles.restack.dev', 'imagebuilds.restack.dev'].flatMap((resource) => [
    { verb: 'patch', resource, subresource: 'status' },
    { verb: 'update', resource, subresource: 'finalizers' },
  ]),
  { verb: 'create', resource: 'events' },
  { verb: 'list', resource: 'events' },
  // watch: the ConfigMaps of spec.recipeFrom are watched, never listed (src/operator/recipe-configmaps.ts).
  ...['get', 'watch', 'create', 'delete'].map((verb) => ({ verb, resource: 'configmaps' })),
  // create: each build's layer record key Secret (src/operator/executor-pod.ts), deleted by the garbage collector.
  ...['get', 'create'].map((verb) => ({ verb, resource: 'secrets' })),
  ...['get', 'list', 'watch', 'create', 'delete'].map((verb) => ({ verb, resource: 'pods' })),
];
const needed: Access[] = [
  ...inBuildNamespace,
  { verb: 'create', resource: 'leases.coordination.k8s.io', namespace: operatorNamespace },
  { verb: 'get', resource: 'leases.coordination.k8s.io/restack-operator', namespace: operatorNamespace },
  { verb: 'update', resource: 'leases.coordination.k8s.io/restack-operator', namespace: operatorNamespace },
  { verb: 'patch', resource: 'pods', namespace: operatorNamespace },
  { verb: 'list', resource: 'pods', namespace: operatorNamespace },
];
// What a least-privilege operator must not be able to do.
const forbidden: Access[] = [
  { verb: 'update', resource: 'stackerfiles.restack.dev' },
  { verb: 'delete', resource: 'stackerfiles.restack.dev' },
  { verb: 'create', resource: 'pods', subresource: 'exec' },
  { verb: 'list', resource: 'secrets' },
  { verb: 'watch', resource: 'secrets' },
  { verb: 'update', resource: 'secrets' },
  { verb: 'patch', resource: 'secrets' },
  { verb: 'delete', resource: 'secrets' },
  { verb: 'update', resource: 'configmaps' },
  { verb: 'list', resource: 'configmaps' },
  { verb: 'get', resource: 'stackerfiles.restack.dev' },
  { verb: 'update', resource: 'stackerfiles.restack.dev', subresource: 'status' },
  { verb: 'patch', resource: 'events' },
  { verb: 'get', resource: 'nodes' },
  { verb: 'create', resource: 'leases.coordination.k8s.io', namespace: 'restack-builds' },
  { verb: 'update', resource: 'leases.coordination.k8s.io/someone-elses', namespace: operatorNamespace },
  { verb: 'create', resource: 'clusterrolebindings.rbac.authorization.k8s.io' },
  { verb: 'patch', resource: 'pods' },
];

describe('config/ kustomize bases and charts/restack on a real API server', () => {
  let cluster: Cluster;
  const kubectl = (args: string[], options: { input?: string; reject?: boolean } = {}) =>
    execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args], options);
  const helm = (args: string[]) => execa(join(cluster.binDir, 'helm'), args);
  const helmTemplate = async (values: string[] = []) =>
    (await helm(['template', 'restack', chart, '--namespace', operatorNamespace, '--include-crds', ...values.flatMap((value) => ['--set', value])])).stdout;
  const canI = async (access: Access, as = operatorUser): Promise<boolean> => {
    const namespace = access.namespace ?? 'restack-builds';
    const args = ['auth', 'can-i', access.verb, access.resource, '--as', as, ...(namespace === '*' ? ['--all-namespaces'] : ['--namespace', namespace])];
    if (access.subresource !== undefined) args.push('--subresource', access.subresource);
    // Exit code 1 means "no".
    return (await kubectl(args, { reject: false })).stdout.trim() === 'yes';
  };
  /** A server-side dry run of the Deployment's pod in restack-system, which enforces the restricted Pod Security level. */
  const admitOperatorPod = (deployment: KubeObject) => {
    const template = (deployment as unknown as { spec: { template: { metadata: object; spec: object } } }).spec.template;
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { ...template.metadata, name: 'restack-operator-pod-check', namespace: operatorNamespace }, spec: template.spec };
    return kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pod) });
  };

  /** The operator's namespace and config/rbac, applied for real (can-i and the ServiceAccount admission need them). */
  const applyOperatorRbac = async () => {
    await kubectl(['apply', '-f', join(root, 'config', 'manager', 'namespace.yaml')]);
    await kubectl(['apply', '-k', join(root, 'config', 'rbac')]);
  };

  before(async () => {
    cluster = await useCluster();
  });

  test('kubectl apply -f crds/, then kubectl apply -k config/samples, succeed server-side', async () => {
    await kubectl(['apply', '--server-side', '-f', join(root, 'crds')]);
    // A new CRD is served a moment after it is created.
    await eventually('config/samples applied', () => kubectl(['apply', '--server-side', '-k', join(root, 'config', 'samples')]));
    const namespace = JSON.parse((await kubectl(['get', 'namespace', 'restack-builds', '-o', 'json'])).stdout) as KubeObject;
    assert.equal(namespace.metadata.labels?.['restack.dev/builds'], 'true');
    assert.equal(namespace.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'privileged', 'the level docs/build-pod.md states');
    const seeds = JSON.parse((await kubectl(['get', 'stackerfile', 'seeds', '--namespace', 'restack-builds', '-o', 'json'])).stdout) as KubeObject;
    assert.deepEqual((seeds['spec'] as { output: { tags: string[] } }).output.tags, ['latest'], 'defaulted by the CRD');
  });

  test("the sample's recipe is valid with its substitutions and is the seeds' example: ssl, python3, and A applying both", async () => {
    const sample = parse(readFileSync(join(root, 'config', 'samples', 'seeds.yaml'), 'utf8')) as { spec: { recipe: string; substitutions: Record<string, string> } };
    const loaded = await validateRecipe(sample.spec.recipe, 'restack-builds/seeds.stacker.yaml', sample.spec.substitutions);
    assert.ok(loaded.ok, describeDiagnostics(loaded));
    const plan = planRecipes(loaded.recipes);
    assert.deepEqual(plan.order, ['ssl', 'python3', 'A']);
    assert.deepEqual(plan.layers.find((layer) => layer.name === 'A')?.dependsOn, ['ssl', 'python3']);
    assert.doesNotMatch(JSON.stringify(plan.inputs), /busybox/);
  });

  test('config/rbac gives the operator every call it makes and nothing more', async () => {
    await applyOperatorRbac();
    // The authorizer's cache sees new bindings a moment later.
    await eventually('the operator role bound', async () => (await canI({ verb: 'list', resource: 'stackerfiles.restack.dev' })) || undefined);
    const denied: string[] = [];
    for (const access of [...needed, ...forbidden]) if (!(await canI(access))) denied.push(describeAccess(access));
    assert.deepEqual(
      denied,
      forbidden.map(describeAccess),
      'denied: exactly the forbidden calls',
    );
  });

  /** The calls `as` may make, of `accesses`, as `VERB RESOURCE in NAMESPACE` lines. */
  const allowed = async (accesses: readonly Access[], as: string) => {
    const granted: string[] = [];
    for (const access of accesses) if (await canI(access, as)) granted.push(describeAccess(access));
    return granted;
  };
  /** Only the calls of a namespace-confined operator: in `namespace`, not in another, not across all namespaces. */
  const assertConfinedTo = async (namespace: string, as: string) => {
    const elsewhere = [...inBuildNamespace.map(inNamespace('team-elsewhere')), ...inBuildNamespace.map(inNamespace('*'))];
    await eventually(`${as} bound in ${namespace}`, async () => (await canI({ verb: 'create', resource: 'pods', namespace }, as)) || undefined);
    assert.deepEqual(await allowed(inBuildNamespace.map(inNamespace(namespace)), as), inBuildNamespace.map(inNamespace(namespace)).map(describeAccess), `every call in ${namespace}`);
    assert.deepEqual(await allowed(elsewhere, as), [], 'nothing in another namespace or cluster-wide: no pod create or delete there');
  };
  const applyKinds = async (objects: readonly KubeObject[], wanted: readonly string[]) =>
    kubectl(['apply', '-f', '-'], { input: objects.filter((object) => wanted.includes(object.kind)).map((object) => JSON.stringify(object)).join('\n') });

  test('config/namespaced confines the operator to its namespace: a Role and RoleBinding there, no ClusterRole', async () => {
    await kubectl(['apply', '-f', join(root, 'config', 'manager', 'namespace.yaml')]);
    await kubectl(['apply', '-f', join(root, 'config', 'namespaced', 'namespace.yaml')]);
    // The cluster-wide binding of config/rbac would answer every question: this test is about the Role alone.
    await kubectl(['delete', 'clusterrolebinding', 'restack-operator', '--ignore-not-found']);
    try {
      const objects = documents((await kubectl(['kustomize', join(root, 'config', 'namespaced')])).stdout);
      assert.deepEqual(kinds(objects).filter((kind) => kind.startsWith('Cluster')), [], 'no ClusterRole, no ClusterRoleBinding');
      const role = objects.find((object) => object.kind === 'Role' && object.metadata.name === 'restack-operator');
      assert.equal(role?.metadata.namespace, 'restack-builds');
      const configRole = documents((await kubectl(['kustomize', join(root, 'config', 'rbac')])).stdout).find((object) => object.kind === 'ClusterRole');
      assert.deepEqual(role?.['rules'], configRole?.['rules'], 'the rules of config/rbac');
      assert.match(JSON.stringify(findObject(objects, 'Deployment')), /"--namespace=restack-builds"/);
      await applyKinds(objects, ['ServiceAccount', 'Role', 'RoleBinding']);
      await assertConfinedTo('restack-builds', operatorUser);
    } finally {
      await applyOperatorRbac();
    }
  });

  test("the chart with watchNamespace: the operator's rights are a Role there, no ClusterRole", async () => {
    await kubectl(['apply', '-f', join(root, 'config', 'manager', 'namespace.yaml')]);
    await kubectl(['create', 'namespace', 'team-a'], { reject: false });
    const objects = documents(await helmTemplate(['watchNamespace=team-a']));
    assert.deepEqual(kinds(objects).filter((kind) => kind.startsWith('Cluster')), [], 'no ClusterRole, no ClusterRoleBinding');
    const role = objects.find((object) => object.kind === 'Role' && object.metadata.name === 'restack');
    assert.equal(role?.metadata.namespace, 'team-a');
    const chartRole = findObject(documents(await helmTemplate()), 'ClusterRole');
    assert.deepEqual(role?.['rules'], chartRole['rules'], 'the rules of the ClusterRole it replaces');
    await applyKinds(objects, ['ServiceAccount', 'Role', 'RoleBinding']);
    await assertConfinedTo('team-a', `system:serviceaccount:${operatorNamespace}:restack`);
  });

  test('kubectl apply -k config/default is accepted by a server-side dry run, and the operator pod meets the restricted level', async () => {
    await applyOperatorRbac();
    await kubectl(['apply', '-f', join(root, 'config', 'seccomp', 'namespace.yaml')]);
    const applied = await kubectl(['apply', '-k', join(root, 'config', 'default'), '--dry-run=server']);
    for (const object of [
      'deployment.apps/restack-operator',
      'service/restack-operator-metrics',
      'clusterrole.rbac.authorization.k8s.io/restack-operator',
      'validatingadmissionpolicy.admissionregistration.k8s.io/restack-build-pods',
      'configmap/restack-build-pods',
      'daemonset.apps/restack-seccomp-installer',
    ]) {
      assert.match(applied.stdout, new RegExp(`^${object} `, 'm'));
    }
    const objects = documents((await kubectl(['kustomize', join(root, 'config', 'default')])).stdout);
    await admitOperatorPod(findObject(objects, 'Deployment'));
    const chartDefaults = buildPodDefaultsOf(operatorArgs(findObject(documents(await helmTemplate()), 'Deployment')));
    assert.deepEqual(buildPodDefaultsOf(operatorArgs(findObject(objects, 'Deployment'))), chartDefaults, 'the build pod defaults of the chart, accepted by the operator');
  });

  test("docs/install.md's overlay points the operator, its build pods, the admission policy and the seccomp installer at another image", async () => {
    const install = readFileSync(join(root, 'docs', 'install.md'), 'utf8');
    const overlay = /```yaml\n(# my-restack\/kustomization.yaml\n[\s\S]*?)```/.exec(install)?.[1];
    assert.ok(overlay, 'docs/install.md shows my-restack/kustomization.yaml');
    const dir = await mkdtemp(join(tmpdir(), 'restack-overlay-'));
    try {
      await writeFile(join(dir, 'kustomization.yaml'), overlay.replace('../restack/config/default', relative(dir, join(root, 'config', 'default'))));
      const objects = documents((await kubectl(['kustomize', dir])).stdout);
      const params = objects.find((object) => object.kind === 'ConfigMap' && object.metadata.name === 'restack-build-pods');
      assert.equal((params?.['data'] as Record<string, string> | undefined)?.['builderImages'], 'registry.mycorp.example/restack/builder:0.1.0', 'the admission policy allows the new builder image');
      assert.match(JSON.stringify(findObject(objects, 'DaemonSet')), /"image":"registry.mycorp.example\/restack\/builder:0.1.0"/, 'the seccomp installer too');
      const deployment = findObject(objects, 'Deployment') as unknown as {
        spec: { template: { spec: { containers: { image: string; args: string[]; env: { name: string; value?: string }[] }[] } } };
      };
      const container = deployment.spec.template.spec.containers[0];
      assert.equal(container?.image, 'registry.mycorp.example/restack/builder:0.1.0');
      assert.ok(container.args.includes('--builder-image=$(BUILDER_IMAGE)'));
      assert.deepEqual(container.env.find((env) => env.name === 'BUILDER_IMAGE')?.value, 'registry.mycorp.example/restack/builder:0.1.0');
      assert.ok(container.env.some((env) => env.name === 'POD_NAMESPACE'), 'the patch merges env by name');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('helm lint charts/restack passes, with default values and with the webhook on', async () => {
    for (const values of [[], ['--set', 'webhook.enabled=true', '--set', 'webhook.tls.secretName=restack-webhook-tls']]) {
      const lint = await helm(['lint', '--strict', chart, ...values]);
      assert.match(lint.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('helm template charts/restack is accepted by a server-side dry run, for each toggle of the values', async () => {
    await kubectl(['apply', '-f', join(root, 'config', 'manager', 'namespace.yaml')]);
    const variants: { values: string[]; has: string[]; hasNot: string[] }[] = [
      // The one Secret by default: the layer record key.
      { values: [], has: ['CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Deployment', 'Service', 'ValidatingAdmissionPolicy', 'DaemonSet', 'NetworkPolicy', 'Secret'], hasNot: [] },
      { values: ['layerRecords.enabled=false'], has: ['Deployment'], hasNot: ['Secret'] },
      { values: ['layerRecords.existingSecret=restack-records'], has: ['Deployment'], hasNot: ['Secret'] },
      { values: ['seccompProfile.installer.enabled=false'], has: ['Deployment'], hasNot: ['DaemonSet'] },
      { values: ['webhook.enabled=true', 'webhook.tls.secretName=restack-webhook-tls', 'networkPolicy.webhookFrom[0].namespaceSelector.matchLabels.restack\\.dev/registry=enabled'], has: ['Secret', 'NetworkPolicy'], hasNot: [] },
      { values: ['webhook.enabled=true', 'webhook.existingSecret=registry-notifications', 'webhook.tls.insecurePlainHTTP=true', 'networkPolicy.enabled=false', 'layerRecords.enabled=false'], has: [], hasNot: ['Secret', 'NetworkPolicy'] },
      { values: ['registryCredentialsSecret=regcred', 'layerRecords.enabled=false'], has: ['Deployment'], hasNot: ['Secret'] },
      { values: ['rbac.create=false', 'serviceAccount.create=false', 'serviceAccount.name=restack-operator', 'admissionPolicy.enabled=false', 'metrics.service.enabled=false'], has: ['Deployment'], hasNot: ['ServiceAccount', 'ClusterRole', 'Role', 'Service', 'ValidatingAdmissionPolicy'] },
    ];
    for (const { values, has, hasNot } of variants) {
      const rendered = await helmTemplate(values);
      const present = new Set(kinds(documents(rendered)));
      for (const kind of has) assert.ok(present.has(kind), `${values.join(' ')}: renders a ${kind}`);
      for (const kind of hasNot) assert.ok(!present.has(kind), `${values.join(' ')}: renders no ${kind}`);
      await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: rendered });
    }
    // The master layer record key: generated, mounted for the operator's group alone, passed by flag.
    const records = documents(await helmTemplate());
    const keySecret = records.find((object) => object.kind === 'Secret' && object.metadata.name === 'restack-layer-records') as unknown as { data: Record<string, string> };
    assert.equal(Buffer.from(keySecret.data['layer-record.key'] ?? '', 'base64').length, 32);
    const recordsDeployment = JSON.stringify(findObject(records, 'Deployment'));
    assert.match(recordsDeployment, /"--layer-record-key-file=\/etc\/restack\/layer-records\/layer-record.key"/);
    assert.match(recordsDeployment, /"secret":\{"secretName":"restack-layer-records","defaultMode":288,/);
    assert.match(recordsDeployment, /"fsGroup":65532/);
    assert.match(JSON.stringify(findObject(documents(await helmTemplate(['layerRecords.existingSecret=restack-records'])), 'Deployment')), /"secretName":"restack-records"/);
    const webhook = documents(await helmTemplate(['webhook.enabled=true', 'webhook.tls.secretName=restack-webhook-tls', 'networkPolicy.webhookFrom[0].namespaceSelector.matchLabels.registry=yes']));
    const args = JSON.stringify(findObject(webhook, 'Deployment'));
    assert.match(args, /--webhook-bind-address=:8443/);
    assert.match(args, /--webhook-secret-file=\/etc\/restack\/webhook\/secret/);
    assert.match(args, /"--webhook-cert-file=\/etc\/restack\/webhook-tls\/tls.crt","--webhook-key-file=\/etc\/restack\/webhook-tls\/tls.key"/);
    assert.match(args, /"secretName":"restack-webhook-tls"/);
    assert.deepEqual(findObject(webhook, 'NetworkPolicy')['spec'], {
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'restack', 'app.kubernetes.io/instance': 'restack', 'app.kubernetes.io/component': 'operator' } },
      policyTypes: ['Ingress'],
      ingress: [
        { ports: [{ protocol: 'TCP', port: 8443 }], from: [{ namespaceSelector: { matchLabels: { registry: 'yes' } } }] },
        { ports: [{ protocol: 'TCP', port: 8080 }] },
      ],
    }, 'the webhook port from the registry\'s namespace alone; metrics from anywhere');
    assert.match(args, /--lease-duration=15","--lease-renew-period=10"/);
    const withCredentials = JSON.stringify(findObject(documents(await helmTemplate(['registryCredentialsSecret=regcred'])), 'Deployment'));
    assert.match(withCredentials, /"name":"REGISTRY_AUTH_FILE","value":"\/etc\/restack\/registry\/config.json"/);
    assert.match(withCredentials, /"secretName":"regcred","items":\[\{"key":".dockerconfigjson","path":"config.json"\}\]/);
    assert.doesNotMatch(args, /REGISTRY_AUTH_FILE/);
    const buildArgs = operatorArgs(findObject(documents(await helmTemplate(['allowedBuilderImages={reg.example/b:1,reg.example/b:2}', 'buildPods.timeout=2h'])), 'Deployment'));
    assert.deepEqual(buildArgs.filter((arg) => arg.startsWith('--allowed-builder-image=')), ['--allowed-builder-image=reg.example/b:1', '--allowed-builder-image=reg.example/b:2']);
    assert.equal(buildPodDefaultsOf(buildArgs).timeout, '2h');
    const params = documents(await helmTemplate(['allowedBuilderImages={reg.example/b:1}'])).find((object) => object.kind === 'ConfigMap' && object.metadata.name === 'restack-build-pods');
    assert.deepEqual(params?.['data'], { operator: 'system:serviceaccount:restack-system:restack', builderImages: 'registry.example/restack/builder:0.1.0,reg.example/b:1' });
    const installer = JSON.stringify(findObject(documents(await helmTemplate(['seccompProfile.installer.kubeletRootDir=/data/kubelet/'])), 'DaemonSet'));
    assert.match(installer, /"hostPath":\{"path":"\/data\/kubelet\/seccomp\/restack","type":"DirectoryOrCreate"\}/);
    const shortLease = JSON.stringify(findObject(documents(await helmTemplate(['leaderElection.leaseDurationSeconds=6', 'leaderElection.renewPeriodSeconds=4'])), 'Deployment'));
    assert.match(shortLease, /--lease-duration=6","--lease-renew-period=4"/);
    // The scale settings (docs/operator.md, "At scale"): the heap limit through NODE_OPTIONS, the rest as flags.
    assert.match(args, /"name":"NODE_OPTIONS","value":"--max-old-space-size=256"/);
    assert.deepEqual(operatorArgs(findObject(webhook, 'Deployment')).filter((arg) => /^--(reconcile-workers|input-check)/.test(arg)), [
      '--reconcile-workers=8',
      '--input-checks-per-second=10',
      '--input-check-burst=20',
      '--input-checks-in-flight=4',
    ]);
    const tuned = findObject(documents(await helmTemplate(['heapLimitMiB=0', 'reconcileWorkers=16', 'inputChecks.perSecond=25'])), 'Deployment');
    assert.doesNotMatch(JSON.stringify(tuned), /NODE_OPTIONS/, 'heapLimitMiB=0: no limit');
    assert.ok(operatorArgs(tuned).includes('--reconcile-workers=16') && operatorArgs(tuned).includes('--input-checks-per-second=25'), operatorArgs(tuned).join(' '));
  });

  test("the chart's operator pod meets the restricted level", async () => {
    await applyOperatorRbac();
    const objects = documents(await helmTemplate(['serviceAccount.create=false', 'serviceAccount.name=restack-operator', 'webhook.enabled=true', 'webhook.tls.secretName=restack-webhook-tls']));
    await admitOperatorPod(findObject(objects, 'Deployment'));
  });

  test('the chart grants the rules of config/rbac and ships the policy of config/admission', async () => {
    const chartObjects = documents(await helmTemplate());
    const configObjects = documents((await kubectl(['kustomize', join(root, 'config', 'default')])).stdout);
    for (const kind of ['ClusterRole', 'Role']) {
      assert.deepEqual(findObject(chartObjects, kind)['rules'], findObject(configObjects, kind)['rules'], `${kind} rules`);
    }
    for (const kind of ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']) {
      assert.deepEqual(findObject(chartObjects, kind), findObject(configObjects, kind), kind);
    }
    // The seccomp installer: the same pod but for its ConfigMap's name (kustomize adds a hash) and the chart's labels.
    const installerPod = (objects: readonly KubeObject[]) => {
      const spec = structuredClone((findObject(objects, 'DaemonSet') as unknown as { spec: { template: { spec: { volumes: { configMap?: { name: string } }[] } } } }).spec.template.spec);
      for (const volume of spec.volumes) if (volume.configMap !== undefined) volume.configMap.name = 'profile';
      return spec;
    };
    assert.deepEqual(installerPod(chartObjects), installerPod(configObjects), 'the seccomp installer pods');
    const profileOf = (objects: readonly KubeObject[]) => objects.find((object) => object.kind === 'ConfigMap' && object.metadata.name.startsWith('restack-seccomp'))?.['data'];
    assert.deepEqual(profileOf(chartObjects), { 'build.json': readFileSync(join(root, 'config', 'seccomp', 'restack-build.json'), 'utf8') });
    assert.deepEqual(profileOf(configObjects), profileOf(chartObjects), 'the same profile');
    const chartCrds = chartObjects.filter((object) => object.kind === 'CustomResourceDefinition');
    assert.deepEqual(chartCrds, configObjects.filter((object) => object.kind === 'CustomResourceDefinition'));
    assert.equal(chartCrds.length, 2);
  });

  test('wrong values fail helm template with the value and the fix', async () => {
    // values.schema.json: an unknown value or a misspelt key is refused with its path.
    await assert.rejects(helmTemplate(['executor=docker']), /'\/executor': value must be one of 'pod', 'local'/);
    await assert.rejects(helmTemplate(['replica=2']), /additional properties 'replica' not allowed/);
    await assert.rejects(helmTemplate(['leaderElection.renewPeriodSeconds=20']), /leaderElection.renewPeriodSeconds: 20 is not shorter than leaderElection.leaseDurationSeconds \(15\)/);
    await assert.rejects(helmTemplate(['serviceAccount.create=false']), /serviceAccount.name: with serviceAccount.create=false, name the existing ServiceAccount/);
    await assert.rejects(helmTemplate(['webhook.enabled=true', 'webhook.secret=s', 'webhook.existingSecret=e']), /webhook: give secret or existingSecret, not both/);
    await assert.rejects(helmTemplate(['reconcileWorkers=0']), /'\/reconcileWorkers': minimum: got 0, want 1/);
    await assert.rejects(helmTemplate(['inputChecks.perSecond=0']), /'\/inputChecks\/perSecond': /);
    await assert.rejects(helmTemplate(['buildPods.timeout=forever']), /\/buildPods\/timeout': .*does not match pattern/);
    // hostUsers and procMount are honoured by default from 1.33 only.
    await assert.rejects(helm(['template', 'restack', chart, '--kube-version', 'v1.32.9']), /chart requires kubeVersion: >=1.33.0-0 which is incompatible with Kubernetes v1.32.9/);
    await assert.rejects(helmTemplate(['webhook.enabled=true']), /webhook.tls.secretName: name a kubernetes.io\/tls Secret for the webhook's certificate .*, or set webhook.tls.insecurePlainHTTP=true/);
  });
});
