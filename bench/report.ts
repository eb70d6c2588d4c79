/** One measured quantity, printed against its reference measured in the same run. */
export interface BenchRow {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  /** The same quantity for the reference (another tool or approach), when there is one. */
  reference?: { name: string; value: number };
  /** The goal, as text, for the reader (e.g. "< 30 s"). */
  target?: string;
  /** Whether the value meets the target; printed, never asserted. */
  met?: boolean;
}

export function printRows(rows: BenchRow[]): void {
  const format = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(3));
  const lines = rows.map((row) => {
    const ratio = row.reference === undefined || row.reference.value === 0 ? '' : `  ratio ${format(row.value / row.reference.value)} vs ${row.reference.name} (${format(row.reference.value)} ${row.unit})`;
    const target = row.target === undefined ? '' : `  target ${row.target}: ${row.met === true ? 'met' : 'NOT met'}`;
    return `${row.bench.padEnd(14)} ${row.metric.padEnd(34)} ${format(row.value).padStart(12)} ${row.unit}${ratio}${target}`;
  });
  console.log(lines.join('\n'));
}

export async function timed<T>(work: () => Promise<T>): Promise<{ result: T; seconds: number }> {
  const start = process.hrtime.bigint();
  const result = await work();
  return { result, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}
