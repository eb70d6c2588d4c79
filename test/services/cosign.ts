/**
 * The real cosign, the reference verifier of restack's signatures: built once from the Go module
 * proxy by install-cosign.sh (cached in ~/.cache/restack/cosign/<version>/), run so that it can
 * only ever reach loopback: plain-http registry flags, no transparency log, no TUF, and a proxy
 * that does not exist for anything that is not loopback.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { requireProgram } from './service.ts';

const installer = join(import.meta.dirname, 'install-cosign.sh');

export interface Cosign {
  /** Runs cosign; never throws on a non-zero exit (tests assert on it). */
  run: (args: string[], options?: { cwd?: string; env?: Record<string, string> }) => Promise<{ exitCode: number; stdout: string; stderr: string }>;
  /** `cosign verify --key KEY REF` against a plain-http loopback registry, offline. */
  verify: (key: string, ref: string) => ReturnType<Cosign['run']>;
  /** `cosign verify-attestation --key KEY --type slsaprovenance REF`, offline. */
  verifyAttestation: (key: string, ref: string) => ReturnType<Cosign['run']>;
  /** Writes cosign.key (encrypted with `password`) and cosign.pub into a new directory; returns it. */
  generateKeyPair: (password: string) => Promise<string>;
}

/** Flags that keep cosign on the loopback registry: no Rekor, no Fulcio, no TUF, http allowed. */
export const offlineRegistryFlags = ['--allow-http-registry', '--allow-insecure-registry'];
export const offlineVerifyFlags = ['--insecure-ignore-tlog', ...offlineRegistryFlags];

/** Builds or reuses cosign; SkipError only when it is not built and Go, needed to build it, is missing. */
export async function installCosign(): Promise<Cosign> {
  const installed = await execa(installer, { reject: false });
  if (installed.exitCode !== 0) {
    await requireProgram('go', 'golang-go (Go >= 1.26), to build cosign once');
    throw new Error(`test/services/install-cosign.sh failed:\n${installed.stderr}`);
  }
  const binary = installed.stdout.trim();
  const home = await mkdtemp(join(tmpdir(), 'restack-cosign-home-'));
  const environment = {
    HOME: home,
    TUF_ROOT: join(home, 'tuf'),
    SIGSTORE_NO_CACHE: 'true',
    COSIGN_EXPERIMENTAL: '0',
    HTTPS_PROXY: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '127.0.0.1,localhost,::1',
  };
  const run: Cosign['run'] = async (args, options = {}) => {
    const result = await execa(binary, args, { reject: false, cwd: options.cwd ?? home, env: { ...environment, ...options.env }, extendEnv: false });
    return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
  };
  return {
    run,
    verify: (key, ref) => run(['verify', '--key', key, ...offlineVerifyFlags, ref]),
    verifyAttestation: (key, ref) => run(['verify-attestation', '--key', key, '--type', 'slsaprovenance', ...offlineVerifyFlags, ref]),
    generateKeyPair: async (password) => {
      const dir = await mkdtemp(join(tmpdir(), 'restack-cosign-keys-'));
      const result = await run(['generate-key-pair'], { cwd: dir, env: { COSIGN_PASSWORD: password } });
      if (result.exitCode !== 0) throw new Error(`cosign generate-key-pair failed: ${result.stderr}`);
      return dir;
    },
  };
}
