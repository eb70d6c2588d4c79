import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CascadeGraph, stronglyConnected } from '../../src/watch/graph.ts';

const reg = 'docker://reg.example/team';

describe('CascadeGraph', () => {
  test('the seeds: python3 feeds A, so a python3 publish checks A (named any way)', () => {
    const graph = new CascadeGraph();
    graph.set('ns/base', { inputs: ['docker://centos:latest'], outputs: [`${reg}/base:latest`] });
    graph.set('ns/python3', { inputs: [`${reg}/base`], outputs: [`${reg}/python3:latest`] });
    graph.set('ns/a', { inputs: [`${reg}/base:latest`, 'reg.example/team/python3', `${reg}/ssl:latest`], outputs: [`${reg}/a:latest`] });
    assert.deepEqual(graph.dependentsOf(`${reg}/python3:latest`), ['ns/a']);
    assert.deepEqual(graph.dependentsOf(`${reg}/base`).sort(), ['ns/a', 'ns/python3']);
    assert.deepEqual(graph.dependentsOf(`${reg}/a:latest`), []);
    assert.deepEqual(graph.cycles(), []);
    graph.remove('ns/a');
    assert.deepEqual(graph.dependentsOf(`${reg}/python3:latest`), []);
  });

  test('an owner using its own output (layers of one recipe) is neither a dependent nor a cycle', () => {
    const graph = new CascadeGraph();
    graph.set('ns/all', { inputs: [`${reg}/python3:latest`], outputs: [`${reg}/python3:latest`, `${reg}/a:latest`] });
    assert.deepEqual(graph.dependentsOf(`${reg}/python3:latest`), []);
    assert.deepEqual(graph.cycles(), []);
  });

  test('reports every cycle with all its members, and forgets it once broken', () => {
    const graph = new CascadeGraph();
    graph.set('ns/x', { inputs: [`${reg}/z`], outputs: [`${reg}/x`] });
    graph.set('ns/y', { inputs: [`${reg}/x`], outputs: [`${reg}/y`] });
    graph.set('ns/z', { inputs: [`${reg}/y`], outputs: [`${reg}/z`] });
    graph.set('ns/p', { inputs: [`${reg}/q`], outputs: [`${reg}/p`] });
    graph.set('ns/q', { inputs: [`${reg}/p`, `${reg}/x`], outputs: [`${reg}/q`] });
    graph.set('ns/free', { inputs: [`${reg}/q`], outputs: [`${reg}/free`] });
    assert.deepEqual(graph.cycles(), [['ns/p', 'ns/q'], ['ns/x', 'ns/y', 'ns/z']]);
    graph.set('ns/z', { inputs: [], outputs: [`${reg}/z`] });
    assert.deepEqual(graph.cycles(), [['ns/p', 'ns/q']]);
  });
});

describe('stronglyConnected', () => {
  test('a chain of 20,000 nodes does not overflow the stack', () => {
    const nodes = Array.from({ length: 20_000 }, (_, i) => `n${i}`);
    const components = stronglyConnected(nodes, (node) => {
      const i = Number(node.slice(1));
      return i + 1 < nodes.length ? [`n${i + 1}`] : ['n0'];
    });
    assert.equal(components.length, 1);
    assert.equal(components[0]?.length, 20_000);
  });
});
