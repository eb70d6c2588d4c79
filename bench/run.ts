// npm run bench: every benchmark, each printing ratios against a reference measured in the same run.
import { printRows, type BenchRow } from './report.ts';
import { buildBench } from './build.ts';
import { buildCacheBench } from './build-cache.ts';
import { buildPodBench } from './build-pod.ts';
import { operatorBench, operatorFanOutBench, operatorPollBench, operatorUpdatesBench } from './operator.ts';
import { signingBench } from './signing.ts';
import { swapBench } from './swap.ts';

const benches: [string, () => Promise<BenchRow[]>][] = [
  ['swap', swapBench],
  ['signing', signingBench],
  ['build', buildBench],
  ['build-cache', buildCacheBench],
  ['build-pod', buildPodBench],
  ['operator', operatorBench],
  ['operator-updates', operatorUpdatesBench],
];
/** Parts of a bench above, run only when named: `npm run bench -- operator-poll`. */
const parts: [string, () => Promise<BenchRow[]>][] = [
  ['operator-poll', operatorPollBench],
  ['operator-fanout', operatorFanOutBench],
];
const only = process.argv.slice(2);
for (const [name, run] of [...benches, ...parts.filter(([name]) => only.includes(name))]) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.error(`bench ${name}...`);
  printRows(await run());
}
