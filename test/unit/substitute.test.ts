import { test } from 'node:test';
import assert from 'node:assert/strict';
import { substitute } from '../../src/stackerfile/substitute.ts';

const run = (text: string, values: Record<string, string> = {}) => substitute(text, 'r.yaml', new Map(Object.entries(values)));

test('a supplied value replaces ${{NAME}} and ${{NAME:default}}', () => {
  const result = run('a: ${{X}}\nb: ${{X:other}}\n', { X: 'one' });
  assert.equal(result.text, 'a: one\nb: one\n');
  assert.deepEqual(result.diagnostics, []);
  assert.deepEqual(result.substitutedValues, ['one']);
});

test('defaults apply when nothing is supplied, including the empty default', () => {
  assert.equal(run('a: ${{X:dflt}}\nb: "${{Y:}}"\n').text, 'a: dflt\nb: ""\n');
});

test('a placeholder with no value and no default is an error naming the variable and the line', () => {
  const { diagnostics } = run('a: 1\nb: ${{MISSING}}\n');
  assert.equal(diagnostics.length, 1);
  assert.deepEqual(diagnostics[0]?.position, { line: 2, col: 4 });
  assert.match(diagnostics[0]?.message ?? '', /\$\{\{MISSING\}\}.*--substitute MISSING=VALUE/);
});

test('a supplied key used as $NAME or ${NAME} is an error', () => {
  const { diagnostics } = run('run: echo $VERSION ${VERSION} $VERSIONS\n', { VERSION: '1' });
  assert.deepEqual(diagnostics.map((d) => d.position.col), [11, 20]);
  assert.match(diagnostics[0]?.message ?? '', /write \$\{\{VERSION\}\}/);
});

test('offsets after a substitution map back to the original text', () => {
  const result = run('a: ${{LONGNAME}} b\n', { LONGNAME: 'x' });
  assert.equal(result.text, 'a: x b\n');
  assert.equal(result.originalOffset(5), 'a: ${{LONGNAME}} '.length);
  assert.equal(result.originalOffset(3), 3);
});
