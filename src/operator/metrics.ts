import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The operator's metrics, in a registry of its own (so two managers in one process do not collide). */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({ name: 'restack_reconcile_total', help: 'Reconciles by kind and result (success, error).', labelNames: ['kind', 'result'], registers: [this.registry] });
  readonly reconcileSeconds = new Histogram({ name: 'restack_reconcile_duration_seconds', help: 'Time a reconcile took.', labelNames: ['kind'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600], registers: [this.registry] });
  readonly builds = new Counter({ name: 'restack_builds_total', help: 'Finished ImageBuilds by result.', labelNames: ['result'], registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'restack_queue_depth', help: 'Keys waiting in a work queue.', labelNames: ['kind'], registers: [this.registry] });
  readonly cacheEntries = new Gauge({ name: 'restack_cache_entries', help: 'Entries of the operator\'s in-memory caches (each bounded), by cache.', labelNames: ['cache'], registers: [this.registry] });
  readonly leader = new Gauge({ name: 'restack_leader', help: '1 while this process holds the leader lease (or does not elect).', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
