import { execa } from 'execa';
import { OciError } from '../errors.ts';
import type { Credential } from './credentials.ts';

/** Helpers say so in different words when they hold nothing for a server. */
const notFoundPattern = /credentials not found|not found in native keychain|no credentials/i;

/**
 * Asks `docker-credential-<helper> get` for a server's credential (the server on stdin, JSON
 * `{Username, Secret}` on stdout). A `<token>` user means the secret is an identity token.
 */
export async function runCredentialHelper(helper: string, serverUrl: string, env: NodeJS.ProcessEnv = process.env): Promise<Credential | undefined> {
  const program = `docker-credential-${helper}`;
  const result = await execa(program, ['get'], { input: serverUrl, env, extendEnv: false, reject: false, timeout: 30_000 });
  if (result.failed) {
    const output = `${result.stdout}\n${result.stderr}`;
    if (result.exitCode !== undefined && notFoundPattern.test(output)) return undefined;
    const missing = (result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    throw new OciError(
      'CREDENTIALS_INVALID',
      missing ? `credential helper ${program} (named in the docker config for ${serverUrl}) is not installed` : `credential helper ${program} failed for ${serverUrl}: ${output.trim() || result.shortMessage}`,
      missing ? `install ${program} or remove it from credHelpers/credsStore` : `run \`echo ${serverUrl} | ${program} get\` to see the problem`,
    );
  }
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(result.stdout) as typeof answer;
  } catch (error) {
    throw new OciError('CREDENTIALS_INVALID', `credential helper ${program} answered with something other than JSON for ${serverUrl}`, undefined, { cause: error });
  }
  const username = typeof answer.Username === 'string' ? answer.Username : '';
  const secret = typeof answer.Secret === 'string' ? answer.Secret : '';
  if (secret === '') return undefined;
  return username === '<token>' ? { identityToken: secret } : { username, password: secret };
}
