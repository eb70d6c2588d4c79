import { readFile } from 'node:fs/promises';
import { Option } from 'commander';
import { defaultLayerCacheEntries } from '../../engine/layer-changes.ts';
import { buildPodDefaultsSchema, type BuildPodDefaults } from '../../operator/build-policy.ts';
import type { Executor } from '../../operator/executor.ts';
import { LocalExecutor } from '../../operator/executor-local.ts';
import { PodExecutor } from '../../operator/executor-pod.ts';
import { defaultReconcileWorkers, Manager, type ManagerOptions } from '../../operator/manager.ts';
import { readRecordKeyFile } from '../../sign/record-key-file.ts';
import { defaultRateLimit, type RateLimit } from '../../watch/rate-limit.ts';
import { defaultSchedule, validateSchedule } from '../../watch/scheduler.ts';
import { UserError } from '../errors.ts';
import { positiveInteger } from '../flag-values.ts';
import { loadKubeConfig } from '../kubeconfig.ts';
import type { RegisterCommand } from './index.ts';

interface OperatorOptions {
  namespace?: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderPodName?: string;
  metricsBindAddress: string;
  executor: 'pod' | 'local';
  builderImage?: string;
  allowedBuilderImage: string[];
  buildPodDefaults: string;
  builder?: string;
  builderEnv: string[];
  leaseDuration: string;
  leaseRenewPeriod: string;
  updates: boolean;
  defaultSchedule: string;
  scheduleJitter: string;
  minScheduleInterval: string;
  insecureRegistry: string[];
  webhookBindAddress?: string;
  webhookSecretFile?: string;
  webhookCertFile?: string;
  webhookKeyFile?: string;
  layerCacheEntries: string;
  layerRecordKeyFile?: string;
  reconcileWorkers: string;
  inputChecksPerSecond: string;
  inputCheckBurst: string;
  inputChecksInFlight: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** How hard input checks may ask each registry, from the three flags. */
function inputCheckLimit(options: OperatorOptions): RateLimit {
  const perSecond = Number(options.inputChecksPerSecond);
  if (!Number.isFinite(perSecond) || perSecond <= 0) {
    throw new UserError(`--input-checks-per-second ${options.inputChecksPerSecond}: not a positive number`, `e.g. --input-checks-per-second ${defaultRateLimit.requestsPerSecond} (0.5 is one check every 2 s)`);
  }
  return {
    requestsPerSecond: perSecond,
    burst: positiveInteger('--input-check-burst', options.inputCheckBurst, defaultRateLimit.burst),
    maxConcurrency: positiveInteger('--input-checks-in-flight', options.inputChecksInFlight, defaultRateLimit.maxConcurrency),
  };
}

/** HOST:PORT or :PORT, as the metrics address is written. */
function hostPort(flag: string, address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) throw new UserError(`${flag} ${address}: not HOST:PORT`, 'give HOST:PORT or :PORT, e.g. :8443');
  return { host: address.slice(0, colon) === '' ? '0.0.0.0' : address.slice(0, colon), port };
}

/** The webhook's certificate and key: both or neither (plain http). */
function webhookTls(options: OperatorOptions): { certFile: string; keyFile: string } | undefined {
  const { webhookCertFile: certFile, webhookKeyFile: keyFile } = options;
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    throw new UserError(`--webhook-${certFile === undefined ? 'cert' : 'key'}-file is missing: the webhook serves TLS with both`, 'give --webhook-cert-file tls.crt and --webhook-key-file tls.key (a kubernetes.io/tls Secret\'s keys), or neither for plain http');
  }
  return { certFile, keyFile };
}

/** What the watcher needs from the flags; undefined with --no-updates. */
async function updateOptions(options: OperatorOptions): Promise<ManagerOptions['updates']> {
  if (!options.updates) return undefined;
  const minSeconds = Number(options.minScheduleInterval);
  if (!Number.isFinite(minSeconds) || minSeconds < 0) throw new UserError(`--min-schedule-interval ${options.minScheduleInterval}: not a number of seconds`, 'give seconds, e.g. 10, or 0 for no minimum');
  try {
    validateSchedule(options.defaultSchedule, minSeconds * 1000);
  } catch (error) {
    throw new UserError(`--default-schedule: ${error instanceof Error ? error.message : String(error)}`, 'give a schedule within --min-schedule-interval, or lower the minimum');
  }
  const jitterSeconds = Number(options.scheduleJitter);
  if (!Number.isFinite(jitterSeconds) || jitterSeconds < 0) throw new UserError(`--schedule-jitter ${options.scheduleJitter}: not a number of seconds`, 'give seconds, e.g. 30, or 0 for none');
  let webhook;
  if (options.webhookBindAddress !== undefined) {
    if (options.webhookSecretFile === undefined) throw new UserError('--webhook-bind-address needs --webhook-secret-file', 'give the file holding the shared secret the registry sends as a bearer token');
    const secret = (await readFile(options.webhookSecretFile, 'utf8')).trim();
    const tls = webhookTls(options);
    webhook = { ...hostPort('--webhook-bind-address', options.webhookBindAddress), secret, ...(tls === undefined ? {} : { tls }) };
  } else if (options.webhookCertFile !== undefined || options.webhookKeyFile !== undefined) {
    throw new UserError('--webhook-cert-file and --webhook-key-file serve --webhook-bind-address', 'add --webhook-bind-address, or drop them');
  }
  return {
    defaultSchedule: options.defaultSchedule,
    minScheduleIntervalMs: minSeconds * 1000,
    jitterWindowMs: jitterSeconds * 1000,
    insecureRegistries: options.insecureRegistry,
    rateLimit: inputCheckLimit(options),
    ...(webhook === undefined ? {} : { webhook }),
  };
}

/** The executor the flags choose: build pods (the default) or child processes of the operator. */
function executorOf(options: OperatorOptions): Executor {
  if (options.executor === 'local') {
    const command = options.builder?.split(' ').filter((word) => word !== '') ?? [process.execPath, process.argv[1] ?? 'restack', 'build'];
    return new LocalExecutor(command, { environment: options.builderEnv });
  }
  if (options.builderEnv.length > 0) throw new UserError('--builder-env is for the builds of --executor local', 'add --executor local, or drop --builder-env: build pods get no variable of the operator\'s');
  if (options.builder !== undefined) throw new UserError('--builder is the command of --executor local', 'add --executor local, or drop --builder and give --builder-image for build pods');
  if (options.builderImage === undefined) throw new UserError('--executor pod needs --builder-image', 'give the image build pods run (images/builder/), e.g. --builder-image registry.example/restack/builder:0.1.0, or use --executor local');
  return new PodExecutor({ policy: { builderImage: options.builderImage, allowedBuilderImages: options.allowedBuilderImage, defaults: buildPodDefaults(options.buildPodDefaults) } });
}

/** --build-pod-defaults: JSON of timeout, startTimeout, resources, storageSizeLimit, nodeSelector and tolerations. */
export function buildPodDefaults(text: string): BuildPodDefaults {
  const hint = 'give JSON such as {"timeout":"1h","resources":{"requests":{"cpu":"1"},"limits":{"memory":"4Gi"}},"nodeSelector":{"restack.dev/builds":"true"}}';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UserError(`--build-pod-defaults: not JSON: ${error instanceof Error ? error.message : String(error)}`, hint);
  }
  const parsed = buildPodDefaultsSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.length === 0 ? '(top)' : issue.path.join('.')}: ${issue.message}`);
  throw new UserError(`--build-pod-defaults: ${problems.join('; ')}`, hint);
}

/** The Lease timings in ms from the two flags (seconds); the renew period must leave room for a failed renewal. */
function leaseTimings(options: Pick<OperatorOptions, 'leaseDuration' | 'leaseRenewPeriod'>): { leaseDurationMs: number; renewEveryMs: number } {
  const seconds = (flag: string, value: string) => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed <= 0) throw new UserError(`${flag} ${value}: give a positive number of seconds`, `e.g. ${flag} 15`);
    return parsed * 1000;
  };
  const leaseDurationMs = seconds('--lease-duration', options.leaseDuration);
  const renewEveryMs = seconds('--lease-renew-period', options.leaseRenewPeriod);
  if (renewEveryMs >= leaseDurationMs) {
    throw new UserError(
      `--lease-renew-period ${options.leaseRenewPeriod} is not shorter than --lease-duration ${options.leaseDuration}: the lease would expire between renewals`,
      'make the renew period at most two thirds of the lease duration, e.g. --lease-duration 15 --lease-renew-period 10',
    );
  }
  return { leaseDurationMs, renewEveryMs };
}

export const registerOperator: RegisterCommand = (program, context) => {
  program
    .command('operator')
    .description('run the Kubernetes operator: reconcile Stackerfiles and run their ImageBuilds (kubeconfig as kubectl finds it)')
    .option('--namespace <ns>', 'watch only this namespace (default: all)')
    .option('--leader-elect', 'elect one active replica through the Lease restack-operator', false)
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (default: --namespace, else default)')
    .option('--leader-pod-name <name>', 'this replica\'s pod (in --leader-election-namespace): labelled restack.dev/leader=true while it leads, so a Service can reach the leader alone')
    .option('--lease-duration <seconds>', 'how long a Lease not renewed keeps standbys waiting (a standby takes over about this long after the leader dies)', '15')
    .option('--lease-renew-period <seconds>', 'how often the leader renews the Lease; shorter than --lease-duration', '10')
    .option('--metrics-bind-address <addr>', 'serves /healthz, /readyz and /metrics', ':8080')
    .addOption(new Option('--executor <kind>', 'where builds run: pod (a build pod per ImageBuild) or local (a child process of the operator, for development)').choices(['pod', 'local']).default('pod'))
    .option('--builder-image <image>', 'the image of build pods (executor pod), unless a Stackerfile\'s spec.builder.image names an allowed one')
    .option('--allowed-builder-image <image>', 'another image a Stackerfile may name in spec.builder.image (repeatable); others are refused', collect, [])
    .option('--build-pod-defaults <json>', 'build pods\' timeout, startTimeout, resources, storageSizeLimit, nodeSelector and tolerations (JSON; a Stackerfile\'s spec.builder adds to them)', '{}')
    .option('--builder <command>', 'executor local: the build command, split on spaces (default: this restack build)')
    .option('--builder-env <name>', 'executor local: pass this variable of the operator\'s environment to builds (repeatable); they get only PATH, locale, proxies and SOURCE_DATE_EPOCH otherwise', collect, [])
    .option('--no-updates', 'build only: do not watch inputs, swap or rebuild (docs/updates.md)')
    .option('--default-schedule <cron>', 'input checks for Stackerfiles without spec.updates.schedule', defaultSchedule)
    .option('--schedule-jitter <seconds>', 'widest delay after a schedule fires, so schedules spread out', '30')
    .option('--min-schedule-interval <seconds>', 'the most often a Stackerfile\'s spec.updates.schedule may check its inputs (registries are shared by every tenant); 0: no minimum', '10')
    .option('--input-checks-per-second <n>', 'input checks (a HEAD of a tag) each registry gets per second, sustained, from all Stackerfiles together', String(defaultRateLimit.requestsPerSecond))
    .option('--input-check-burst <n>', 'input checks a registry may get at once after a quiet spell, above --input-checks-per-second', String(defaultRateLimit.burst))
    .option('--input-checks-in-flight <n>', 'input checks waiting on one registry at once; namespaces take turns for them', String(defaultRateLimit.maxConcurrency))
    .option('--insecure-registry <host>', 'check inputs in this registry over plain http (repeatable; loopback always is)', collect, [])
    .option('--webhook-bind-address <addr>', 'receive registry push notifications on HOST:PORT at /webhook/registry')
    .option('--webhook-secret-file <file>', 'the shared secret registries send as Authorization: Bearer <secret>, or sign the body with (X-Restack-Signature: sha256=<HMAC-SHA256>)')
    .option('--webhook-cert-file <file>', 'serve the webhook over https with this certificate (PEM, e.g. a kubernetes.io/tls Secret\'s tls.crt); read again when it changes')
    .option('--webhook-key-file <file>', 'the private key of --webhook-cert-file (PEM, tls.key)')
    .option(
      '--layer-record-key-file <file>',
      "the master layer record key (32 random bytes; owner- or group-readable only, as the chart mounts its Secret): each Stackerfile's builds sign their layers' changed paths with a key derived from it, and its swaps then read no own layer (docs/security.md). Without it nothing is recorded",
    )
    .option('--layer-cache-entries <n>', 'file entries of layer listings kept in memory for the swaps\' overlap checks (least recently used go first)', String(defaultLayerCacheEntries))
    .option('--reconcile-workers <n>', 'Stackerfiles, and ImageBuilds (swaps included), reconciled at once; each waits mostly on the API server or a registry', String(defaultReconcileWorkers))
    .action(async (options: OperatorOptions) => {
      const { logger } = context();
      const timings = leaseTimings(options);
      if (options.leaderPodName !== undefined && !options.leaderElect) throw new UserError('--leader-pod-name labels the leader of --leader-elect', 'add --leader-elect, or drop --leader-pod-name');
      // Every flag is checked before the kubeconfig is read.
      const executor = executorOf(options);
      const updates = await updateOptions(options);
      const layerCacheEntries = positiveInteger('--layer-cache-entries', options.layerCacheEntries, defaultLayerCacheEntries);
      const reconcileWorkers = positiveInteger('--reconcile-workers', options.reconcileWorkers, defaultReconcileWorkers);
      const layerRecordKey = options.layerRecordKeyFile === undefined ? undefined : await readRecordKeyFile(options.layerRecordKeyFile, { groupReadable: true });
      const kubeConfig = loadKubeConfig();
      const manager = new Manager({
        kubeConfig,
        logger,
        executor,
        ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
        metricsBindAddress: options.metricsBindAddress,
        layerCacheEntries,
        ...(layerRecordKey === undefined ? {} : { layerRecordKey }),
        reconcileWorkers,
        ...(updates === undefined ? {} : { updates }),
        ...(options.leaderElect
          ? {
              leaderElection: {
                namespace: options.leaderElectionNamespace ?? options.namespace ?? 'default',
                name: 'restack-operator',
                ...timings,
                ...(options.leaderPodName === undefined ? {} : { pod: options.leaderPodName }),
              },
            }
          : {}),
      });
      await manager.start();
      logger.info({ address: manager.address() }, 'operator running');
      await new Promise<void>((resolve) => {
        const shutdown = (signal: string) => {
          logger.info({ signal }, 'shutting down');
          void manager.stop().then(resolve);
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
    });
};
