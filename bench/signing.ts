import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { restackSigning } from '../src/engine/signing.ts';
import { keySigner } from '../src/sign/signer.ts';
import { startRegistry } from '../test/services/registry.ts';
import { pushLayered } from '../test/swap/seeds.ts';
import { timed, type BenchRow } from './report.ts';
import { eachLimited } from './limit.ts';
import { composeApp, concurrency, fanOutImages, pushInputs, registryStats, swapFanOut } from './swap.ts';

/**
 * The cost of signing in a fan-out: one python3 bump swapped into `fanOutImages` images without
 * signing, then the same bump into as many other images with each new digest signed and attested
 * (ECDSA P-256, the cosign tag scheme) before its tag moves. Same registry, same images, same
 * concurrency: the difference is the signature's and the attestation's reads and writes.
 */
export async function signingBench(): Promise<BenchRow[]> {
  const registry = await startRegistry({ parentDirectory: '/dev/shm' });
  try {
    const prefix = `docker://${registry.host}/bench`;
    const { base, python3Next } = await pushInputs(prefix, { base: 1 << 20, ssl: 256 << 10, python3: 512 << 10 });
    const unsigned = Array.from({ length: fanOutImages }, (_, index) => `plain-${index}`);
    const signed = Array.from({ length: fanOutImages }, (_, index) => `signed-${index}`);
    const recordKey = randomBytes(32);
    await eachLimited([...unsigned, ...signed], concurrency, (name) => composeApp(prefix, name, 64 << 10, recordKey));
    await pushLayered(prefix, 'python3', [base, python3Next]);

    const stats = registryStats(`${prefix}/python3:latest`);
    const run = async (names: string[], signing?: Parameters<typeof swapFanOut>[6]) => {
      stats.reset();
      let shared = 0;
      const { seconds } = await timed(() => swapFanOut(prefix, names, `${prefix}/python3:latest`, concurrency, () => (shared = stats.requests), recordKey, signing));
      const { requests, requestsByMethod } = stats.snapshot();
      return { seconds, perImage: (requests - shared) / names.length, requestsByMethod };
    };
    const off = await run(unsigned);
    const signing = restackSigning(keySigner(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey, 'bench key'));
    const on = await run(signed, signing);
    console.error(`signed fan-out requests by method: ${JSON.stringify(on.requestsByMethod)}`);
    return [
      { bench: 'signing', metric: `swap ${fanOutImages} images, signed`, value: on.seconds, unit: 's', reference: { name: 'unsigned', value: off.seconds } },
      { bench: 'signing', metric: 'time per image, signed', value: (on.seconds / fanOutImages) * 1000, unit: 'ms', reference: { name: 'unsigned', value: (off.seconds / fanOutImages) * 1000 } },
      { bench: 'signing', metric: 'requests per image, signed', value: on.perImage, unit: 'req', reference: { name: 'unsigned', value: off.perImage } },
    ];
  } finally {
    await registry.stop();
  }
}
