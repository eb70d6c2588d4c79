/**
 * What a RegistryStore sent and received: the benchmarks report "requests per image" and
 * "layer bytes sent" from it. Body bytes are split between blob transfers and everything else
 * (manifests, tokens, tag lists).
 */
export class RegistryStats {
  requests = 0;
  requestsByMethod: Record<string, number> = {};
  retries = 0;
  blobBytesSent = 0;
  otherBytesSent = 0;
  blobBytesReceived = 0;
  otherBytesReceived = 0;
  /** Requests allowed in flight at once now (it adapts to the registry's answers); kept by reset. */
  concurrencyLimit = 0;

  countRequest(method: string): void {
    this.requests++;
    this.requestsByMethod[method] = (this.requestsByMethod[method] ?? 0) + 1;
  }

  countSent(kind: BodyKind, bytes: number): void {
    if (kind === 'blob') this.blobBytesSent += bytes;
    else this.otherBytesSent += bytes;
  }

  countReceived(kind: BodyKind, bytes: number): void {
    if (kind === 'blob') this.blobBytesReceived += bytes;
    else this.otherBytesReceived += bytes;
  }

  snapshot(): RegistryStatsSnapshot {
    return {
      requests: this.requests,
      requestsByMethod: { ...this.requestsByMethod },
      retries: this.retries,
      blobBytesSent: this.blobBytesSent,
      otherBytesSent: this.otherBytesSent,
      blobBytesReceived: this.blobBytesReceived,
      otherBytesReceived: this.otherBytesReceived,
      concurrencyLimit: this.concurrencyLimit,
    };
  }

  reset(): void {
    this.requests = 0;
    this.requestsByMethod = {};
    this.retries = 0;
    this.blobBytesSent = 0;
    this.otherBytesSent = 0;
    this.blobBytesReceived = 0;
    this.otherBytesReceived = 0;
  }
}

export interface RegistryStatsSnapshot {
  requests: number;
  requestsByMethod: Record<string, number>;
  retries: number;
  blobBytesSent: number;
  otherBytesSent: number;
  blobBytesReceived: number;
  otherBytesReceived: number;
  concurrencyLimit: number;
}

/** Whether a body is blob content (layers, configs) or protocol traffic. */
export type BodyKind = 'blob' | 'other';
