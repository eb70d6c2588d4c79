import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import type { BuildEvent, BuildOutput } from './events.ts';

/**
 * The compact result of a build, as `restack build --termination-log PATH` writes it for the
 * build pod's termination message (the kubelet keeps at most 4096 bytes of it): the outputs with
 * their digests and inputs, or the failure. Plain JSON when it fits; else gzip + base64 behind
 * `gzipMarker`; else detail is dropped (inputs, then refs; the error's last lines, then the tail
 * of its message) and `dropped` says what.
 */
export const terminationMessageLimit = 4096;
export const gzipMarker = 'restack-gz64:';

const inputSchema = z.object({ ref: z.string(), role: z.enum(['from', 'apply']), digest: z.string() });
const outputSchema = z.object({
  name: z.string(),
  digest: z.string(),
  /** Dropped last when space runs out: the reader derives it from the registry, name and tag. */
  ref: z.string().optional(),
  inputs: z.array(inputSchema).optional(),
});
const errorSchema = z.object({
  step: z.string().optional(),
  layer: z.string().optional(),
  code: z.string(),
  message: z.string(),
  lastLines: z.array(z.string()).optional(),
});
const dropped = z.array(z.string()).optional();
export const resultMessageSchema = z.union([
  z.object({ v: z.literal(1), outputs: z.array(outputSchema), dropped }),
  z.object({ v: z.literal(1), error: errorSchema, dropped }),
]);
export type ResultMessage = z.infer<typeof resultMessageSchema>;
export type ResultOutput = z.infer<typeof outputSchema>;
export type ResultError = z.infer<typeof errorSchema>;

/** A published output as the result reports it: where it was pushed (else its layout ref) and its inputs from provenance. */
export function resultOutput(output: BuildOutput): ResultOutput {
  const pushed = output.pushed[0];
  const ref = pushed === undefined ? output.ref : pushed.slice(0, pushed.lastIndexOf('@')).replace(/^docker:\/\//, '');
  const { base, applied } = output.provenance;
  const inputs = [
    ...(base === null ? [] : [{ ref: base.ref, role: 'from' as const, digest: base.digest }]),
    ...applied.map((input) => ({ ref: input.ref, role: 'apply' as const, digest: input.digest })),
  ];
  return { name: output.name, digest: output.digest, ref, inputs };
}

/** The outputs a build reports: build-only layers are never published. */
export function resultOutputs(outputs: readonly BuildOutput[]): ResultOutput[] {
  return outputs.filter((output) => !output.buildOnly).map(resultOutput);
}

/** A failed build's error event as the result, with the step under way when it failed. */
export function errorResult(event: Extract<BuildEvent, { event: 'error' }>, step: string | undefined): ResultMessage {
  return {
    v: 1,
    error: {
      ...(step === undefined ? {} : { step }),
      ...(event.layer === undefined ? {} : { layer: event.layer }),
      code: event.code,
      message: event.hint === undefined ? event.message : `${event.message} (hint: ${event.hint})`,
      ...(event.lastLines === undefined ? {} : { lastLines: event.lastLines }),
    },
  };
}

function gzipped(text: string): string {
  return `${gzipMarker}${gzipSync(text, { level: 9 }).toString('base64')}`;
}

/** The first form that fits: JSON, then compressed. */
function fitted(message: ResultMessage, limit: number): string | undefined {
  const json = JSON.stringify(message);
  if (Buffer.byteLength(json) <= limit) return json;
  const compressed = gzipped(json);
  return compressed.length <= limit ? compressed : undefined;
}

/** Ever smaller versions of the message, each naming what it left out. */
function* reductions(message: ResultMessage): Generator<ResultMessage> {
  if ('outputs' in message) {
    yield { v: 1, outputs: message.outputs.map(({ inputs: _, ...output }) => output), dropped: ['inputs'] };
    yield { v: 1, outputs: message.outputs.map(({ name, digest }) => ({ name, digest })), dropped: ['inputs', 'refs'] };
    return;
  }
  const { lastLines = [], ...error } = message.error;
  for (let keep = Math.floor(lastLines.length / 2); keep > 0; keep = Math.floor(keep / 2)) {
    yield { v: 1, error: { ...error, lastLines: lastLines.slice(-keep) }, dropped: [`${lastLines.length - keep} of the last lines`] };
  }
  yield { v: 1, error, dropped: ['lastLines'] };
  yield { v: 1, error: { ...error, message: `${error.message.slice(0, 1024)}...` }, dropped: ['lastLines', 'the end of the message'] };
}

export function encodeResultMessage(message: ResultMessage, limit = terminationMessageLimit): string {
  const full = fitted(message, limit);
  if (full !== undefined) return full;
  for (const smaller of reductions(message)) {
    const text = fitted(smaller, limit);
    if (text !== undefined) return text;
  }
  const count = 'outputs' in message ? message.outputs.length : 0;
  return JSON.stringify({
    v: 1,
    error: { code: 'RESULT_TOO_LARGE', message: `the build succeeded, but its ${count} outputs do not fit in ${limit} bytes even without refs and inputs; see the build log for their digests` },
  } satisfies ResultMessage);
}

/** The result in a termination message; undefined when the text is not one (e.g. the kubelet's fallback to the log tail). */
export function decodeResultMessage(text: string): ResultMessage | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text.startsWith(gzipMarker) ? gunzipSync(Buffer.from(text.slice(gzipMarker.length), 'base64')).toString('utf8') : text);
  } catch {
    return undefined;
  }
  const parsed = resultMessageSchema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}
