/**
 * The web view's layout, in Node: the page's own graph.js turns a topology into an ELK graph,
 * elkjs lays it out as the page's worker does, and nothing overlaps: no two boxes or ends in
 * the same box, no end or box outside the box it is in, and every edge's label has its room.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import ELK, { type ElkNode } from 'elkjs/lib/elk.bundled.js';
import type { EndpointInfo, SegmentInfo } from '../../../src/api/protocol';
import { type Topology, topologyOf } from '../../../src/ui/model';
import { ROOT } from '../../helpers/daemon';
import { ep, seg } from './segments';

/** graph.js, as the page loads it (a plain script that is also a CommonJS module). */
interface Graph {
  toElk(t: Topology): ElkNode;
  overlaps(laid: ElkNode): string[];
  rate(bps: number): string;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const graph = require(path.join(ROOT, 'src/ui/static/graph.js')) as Graph;

/** A segment from `head` to `tail` (null: none yet). */
function segment(
  id: string,
  head: Partial<EndpointInfo>,
  tail: Partial<EndpointInfo> | null,
  o: Partial<SegmentInfo> = {},
): SegmentInfo {
  return seg(id, { url: '', head: ep(head), tail: tail && ep(tail), ...o });
}

/** Segments of every kind: namespaces, containers, UDP, unix, a set, a trigger, legs to two peers. */
function mixed(n: number): SegmentInfo[] {
  const out: SegmentInfo[] = [];
  for (let i = 0; i < n; i++) {
    const p = 8000 + i * 10;
    out.push(
      segment(`web${i}`, { port: p }, { ns: `ns${i % 3}`, port: 5000 }),
      segment(
        `dns${i}`,
        { proto: 'udp', port: p + 1, ns: 'red' },
        { proto: 'udp', ns: `ns${i % 3}`, port: 53 },
      ),
      segment(`db${i}`, { port: p + 2 }, { ns: 'docker:mysql', container: 'mysql', port: 3306 }),
      segment(`sock${i}`, { port: p + 3 }, { proto: 'unix', host: '', port: 0, path: `/run/app${i}.sock` }),
      segment(`lazy${i}`, { port: p + 4 }, null, { state: 'waiting' }),
      segment(`rem${i}`, { port: p + 5 }, { host: '', port: 0, peer: `10.0.0.${2 + (i % 2)}/rem${i}-child` }),
      segment(
        `lb${i}`,
        { port: p + 6 },
        { port: 7001 },
        {
          tails: [
            { url: 'tcp://127.0.0.1:7001', health: 'up' },
            { url: `tcp://ns${i % 3}@127.0.0.1:7002`, health: 'down' },
          ],
        },
      ),
    );
  }
  return out;
}

async function layout(t: Topology): Promise<ElkNode> {
  return new ELK().layout(graph.toElk(t));
}

describe('the layout', () => {
  it('overlaps nothing for segments of every kind across three hosts', async () => {
    const t = topologyOf(mixed(3), 'here');
    assert.equal(t.hosts.length, 3);
    const laid = await layout(t);
    assert.deepEqual(graph.overlaps(laid), []);
    // every end and every edge was placed
    assert.equal(
      laid.edges?.length,
      t.segments.reduce((n, s) => n + s.tails.length, 0),
    );
    for (const e of laid.edges ?? [])
      assert.ok((e as { sections?: unknown[] }).sections?.length, `${e.id} is drawn`);
  });

  it('keeps every label apart from the ends', async () => {
    const laid = await layout(topologyOf(mixed(2), 'here'));
    const ends: { x: number; y: number; width: number; height: number }[] = [];
    (function walk(n: ElkNode) {
      for (const c of n.children ?? []) {
        if (!c.children?.length && c.id.startsWith('head') !== c.id.startsWith('tail')) ends.push(c as never);
        walk(c);
      }
    })(laid);
    const labels = (laid.edges ?? []).flatMap((e) => e.labels ?? []);
    assert.ok(labels.length > 0);
    for (const l of labels)
      for (const e of ends) {
        const apart =
          l.x! + l.width! <= e.x ||
          e.x + e.width <= l.x! ||
          l.y! + l.height! <= e.y ||
          e.y + e.height <= l.y!;
        assert.ok(apart, `the label of ${l.text} is apart from an end`);
      }
  });

  it('finds an overlap when there is one (the check above can fail)', () => {
    const laid: ElkNode = {
      id: 'root',
      children: [
        {
          id: 'a',
          x: 0,
          y: 0,
          width: 100,
          height: 50,
          children: [{ id: 'c', x: 90, y: 10, width: 30, height: 10 }],
        },
        { id: 'b', x: 50, y: 20, width: 100, height: 50 },
      ],
    };
    assert.deepEqual(graph.overlaps(laid), ['a overlaps b', 'c is outside a']);
  });

  it('writes rates in binary units', () => {
    assert.deepEqual([0, 999, 1536, 5 * 1024 * 1024].map(graph.rate), [
      '0 B/s',
      '999 B/s',
      '1.5 KiB/s',
      '5.0 MiB/s',
    ]);
  });
});
