import { readFileSync } from 'node:fs';

/** restack's version: package.json sits two levels up from both src/engine/ and the compiled dist/engine/. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
