import { KubeConfig } from '@kubernetes/client-node';
import { LocalExecutor } from '../../operator/executor-local.ts';
import { Manager } from '../../operator/manager.ts';
import type { RegisterCommand } from './index.ts';

interface OperatorOptions {
  namespace?: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  metricsBindAddress: string;
  builder?: string;
}

export const registerOperator: RegisterCommand = (program, context) => {
  program
    .command('operator')
    .description('run the Kubernetes operator: reconcile Stackerfiles and run their ImageBuilds (kubeconfig as kubectl finds it)')
    .option('--namespace <ns>', 'watch only this namespace (default: all)')
    .option('--leader-elect', 'elect one active replica through the Lease restack-operator', false)
    .option('--leader-election-namespace <ns>', 'namespace of the Lease (default: --namespace, else default)')
    .option('--metrics-bind-address <addr>', 'serves /healthz, /readyz and /metrics', ':8080')
    .option('--builder <command>', 'the build command, split on spaces (default: this restack build)')
    .action(async (options: OperatorOptions) => {
      const { logger } = context();
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromDefault();
      const builder = options.builder?.split(' ').filter((word) => word !== '') ?? [process.execPath, process.argv[1] ?? 'restack', 'build'];
      const manager = new Manager({
        kubeConfig,
        logger,
        executor: new LocalExecutor(builder),
        ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
        metricsBindAddress: options.metricsBindAddress,
        ...(options.leaderElect
          ? { leaderElection: { namespace: options.leaderElectionNamespace ?? options.namespace ?? 'default', name: 'restack-operator', leaseDurationMs: 15_000, renewEveryMs: 10_000 } }
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
