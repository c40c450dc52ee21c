/**
 * The web view's model: the topology (hosts, namespace and container boxes, ends, legs) and
 * the numbers, from segments as `list --json` has them.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LOCAL_HOST, countersOf, statsOf, topologyOf } from '../../../src/ui/model';
import { ep, seg } from './segments';

describe('the topology', () => {
  it('puts each end in its host, namespace or container box, and shares a tail two segments reach', () => {
    const t = topologyOf(
      [
        seg('web', { head: ep({ port: 8080 }), tail: ep({ ns: 'blue', port: 5000 }) }),
        seg('api', { head: ep({ port: 8081, ns: 'red' }), tail: ep({ ns: 'blue', port: 5000 }) }),
        seg('db', { tail: ep({ ns: 'docker:mysql', container: 'mysql', port: 3306 }) }),
      ],
      'myhost',
    );
    assert.deepEqual(t.hosts, [{ id: LOCAL_HOST, label: 'myhost', local: true }]);
    assert.deepEqual(t.groups.map((g) => [g.kind, g.label]).sort(), [
      ['container', 'mysql'],
      ['namespace', 'blue'],
      ['namespace', 'red'],
    ]);
    const byLabel = (label: string) => t.ends.filter((e) => e.label === label);
    assert.equal(byLabel('tcp://127.0.0.1:5000').length, 1, 'one tail end for both segments');
    const [blueTail] = byLabel('tcp://127.0.0.1:5000');
    assert.equal(blueTail.ns, 'blue');
    assert.deepEqual(
      t.segments.filter((s) => s.tails[0] === blueTail.id).map((s) => s.id),
      ['api', 'web'],
    );
    assert.equal(t.ends.find((e) => e.end === 'head' && e.label.endsWith(':8080'))?.ns, 'myhost');
    assert.equal(t.ends.find((e) => e.end === 'head' && e.label.endsWith(':8081'))?.ns, 'red');
    assert.equal(t.ends.find((e) => e.label.endsWith(':3306'))?.ns, 'mysql');
  });

  it('draws a remote leg into the peer host box and a tunnel leg into the tunnel peer host box', () => {
    const t = topologyOf(
      [
        seg('rem', { tail: ep({ host: '', port: 0, peer: '10.0.0.2/rem-child' }) }),
        seg('tun', { tail: ep({ host: '100.65.0.2', port: 5432 }) }),
      ],
      'a',
      [
        {
          host: 'b.example',
          localIp: '100.65.0.1',
          remoteIp: '100.65.0.2',
          engine: 'wireguard',
          udp: false,
          iface: 'wh0',
        },
      ],
    );
    assert.deepEqual(
      t.hosts.map((h) => [h.id, h.local]),
      [
        [LOCAL_HOST, true],
        ['10.0.0.2', false],
        ['b.example', false],
      ],
    );
    const rem = t.segments.find((s) => s.id === 'rem')!;
    const tun = t.segments.find((s) => s.id === 'tun')!;
    assert.equal(rem.leg, 'remote');
    assert.equal(tun.leg, 'tunnel');
    assert.equal(t.ends.find((e) => e.id === rem.tails[0])?.host, '10.0.0.2');
    assert.equal(t.ends.find((e) => e.id === rem.tails[0])?.label, 'segment rem-child');
    assert.equal(t.ends.find((e) => e.id === tun.tails[0])?.host, 'b.example');
    assert.equal(t.ends.find((e) => e.id === rem.head)?.host, LOCAL_HOST);
  });

  it('gives each tail of a set its own end, in its namespace, and a segment waiting for its trigger a pending one', () => {
    const t = topologyOf(
      [
        seg('lb', {
          tails: [
            { url: 'tcp://127.0.0.1:7001', health: 'up' },
            { url: 'tcp://blue@127.0.0.1:7002', health: 'down', lastError: 'refused' },
          ],
        }),
        seg('lazy', { tail: null, state: 'waiting', trigger: { state: 'armed', runs: 0, failures: 0 } }),
      ],
      'a',
    );
    const lb = t.segments.find((s) => s.id === 'lb')!;
    assert.deepEqual(
      lb.tails.map((id) => t.ends.find((e) => e.id === id)).map((e) => [e?.label, e?.ns]),
      [
        ['tcp://127.0.0.1:7001', 'a'],
        ['tcp://127.0.0.1:7002', 'blue'],
      ],
    );
    const lazy = t.segments.find((s) => s.id === 'lazy')!;
    assert.equal(lazy.pending, true);
    assert.equal(lb.pending, false);
    assert.equal(t.ends.find((e) => e.id === lazy.tails[0])?.label, 'made by its trigger');
  });

  it('is the same for the same segments in another order (the page lays it out again only on a change)', () => {
    const a = [seg('x', { head: ep({ port: 1 }) }), seg('y', { head: ep({ port: 2 }) })];
    assert.deepEqual(topologyOf(a, 'h'), topologyOf([...a].reverse(), 'h'));
    const moved = [a[0], seg('y', { head: ep({ port: 3 }) })];
    assert.notDeepEqual(topologyOf(a, 'h'), topologyOf(moved, 'h'));
  });
});

describe('the numbers', () => {
  it('are rates over the time between two reads, states in words, health and the trigger', () => {
    const traffic = (up: number, down: number) => ({
      open: 2,
      total: 5,
      refused: 0,
      bytesUp: up,
      bytesDown: down,
      dialFailures: 0,
      lastActive: null,
    });
    const before = countersOf([seg('web', { traffic: traffic(1000, 5000) })]);
    const now = 1_000_000;
    const stats = statsOf(
      [
        seg('web', { traffic: traffic(3000, 9000), tails: [{ url: 'tcp://127.0.0.1:9000', health: 'up' }] }),
        seg('new', { traffic: traffic(500, 500), state: 'container-down' }),
        seg('lazy', {
          state: 'idle',
          trigger: { state: 'armed', runs: 3, failures: 1, idleMs: 30_000, idledAt: now - 120_000 },
        }),
      ],
      before,
      500,
      now,
    );
    assert.deepEqual(stats.web, {
      state: 'ready',
      upBps: 4000,
      downBps: 8000,
      open: 2,
      health: ['up'],
      note: '',
    });
    assert.equal(stats.new.state, 'container down');
    assert.equal(stats.new.upBps, 0, 'a segment new since the last read starts at 0');
    assert.equal(stats.lazy.state, 'idle');
    assert.equal(
      stats.lazy.note,
      'trigger armed \u00d73 \u00b7 1 failed \u00b7 idle 30s \u00b7 idled 2m ago',
    );
  });
});
