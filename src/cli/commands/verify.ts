import { verifyImage, type ImageVerification } from '../../engine/signing.ts';
import { publicKeyFile } from '../../sign/key-file.ts';
import type { SlsaPredicate } from '../../sign/provenance.ts';
import { printJson, type Output } from '../output.ts';
import type { RegisterCommand } from './index.ts';
import { addStoreOptions, referenceOpener, type StoreOptions } from './store-options.ts';

function short(digest: string): string {
  return digest.slice(0, 19);
}

function digestOf(set: Record<string, string> | undefined): string {
  return set?.['sha256'] === undefined ? 'unknown' : `sha256:${set['sha256']}`;
}

function printProvenance(output: Output, predicate: SlsaPredicate): void {
  const { invocation, metadata } = predicate;
  output.out(`  provenance ${predicate.buildType}`);
  output.out(`    builder  ${predicate.builder.id}`);
  if (metadata?.buildFinishedOn !== undefined) output.out(`    finished ${metadata.buildFinishedOn}`);
  const source = invocation?.configSource;
  if (source?.entryPoint !== undefined) output.out(`    recipe   layer ${source.entryPoint} of ${source.uri ?? '?'}, ${digestOf(source.digest)}`);
  if (invocation?.parameters?.image !== undefined) output.out(`    swapped  from ${invocation.parameters.image}`);
  for (const change of invocation?.parameters?.changes ?? []) {
    output.out(`      ${change.dependency} (${change.platform}): ${short(change.from)} -> ${short(change.to)}`);
  }
  output.out('    inputs');
  for (const material of predicate.materials ?? []) output.out(`      ${material.uri} ${digestOf(material.digest)}`);
}

function printVerification(output: Output, result: ImageVerification, key: string): void {
  output.out(`verified ${result.ref.includes('@') ? result.ref : `${result.ref}@${result.digest}`}`);
  output.out(`  ${result.signatures} signature(s) and ${result.provenance.length} SLSA provenance attestation(s) by ${key}`);
  for (const predicate of result.provenance) printProvenance(output, predicate);
  for (const rejected of result.rejected) output.out(`  ignored ${rejected.tag} layer ${short(rejected.layer)}: ${rejected.reason}`);
}

export const registerVerify: RegisterCommand = (program, context) => {
  addStoreOptions(
    program
      .command('verify')
      .description("check an image's cosign signature and SLSA provenance attestation with a public key, and print the provenance")
      .argument('<ref>', 'docker://host/repo:tag or @sha256:... (a tag is resolved once; the digest is what is checked)')
      .addHelpText('after', '\nExit codes: 0 signed and attested by the key, 1 not (the reason on stderr), 2 bad usage.'),
  )
    .requiredOption('--key <file>', 'the public key (cosign.pub)')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, options: StoreOptions & { key: string; json?: boolean }) => {
      const { output } = context();
      const result = await verifyImage(referenceOpener(options)(ref), await publicKeyFile(options.key));
      if (options.json === true) printJson(output, result);
      else printVerification(output, result, options.key);
    });
};
