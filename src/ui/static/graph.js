/*
 * The web view's layout input: the topology the daemon sends (src/ui/model.ts) as an ELK
 * graph. Hosts are boxes; namespaces and containers are boxes inside them; ends are the
 * nodes; each segment is an edge from its head to each of its tails, the first with room
 * kept for its label (state and rates), so that numbers changing never move a box.
 * Coordinates come back absolute (shapeCoords and edgeCoords ROOT): the page draws them as
 * they are. A plain script for the browser (window.WormholeGraph) and a CommonJS module for
 * the tests in Node: no bundler.
 */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.WormholeGraph = factory();
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  /** Pixels per character of the labels' font (monospace 12px), and a node's height. */
  var CHAR = 7.3;
  var END_HEIGHT = 26;
  /** The room kept on each segment's first edge for its label: id, state, rates, trigger. */
  var LABEL_WIDTH = 240;
  var LABEL_HEIGHT = 60;

  function box(id, label, children) {
    return {
      id: id,
      labels: [{ text: label, width: label.length * CHAR, height: 16 }],
      layoutOptions: {
        'elk.padding': '[top=30,left=14,bottom=14,right=14]',
        'elk.nodeLabels.placement': 'INSIDE V_TOP H_LEFT',
      },
      children: children,
    };
  }

  /** The ELK graph of a topology. */
  function toElk(topology) {
    var hosts = {};
    var groups = {};
    topology.hosts.forEach(function (h) {
      hosts[h.id] = box('host\u0000' + h.id, h.label, []);
    });
    topology.groups.forEach(function (g) {
      var word = g.kind === 'container' ? 'container ' : 'namespace ';
      groups[g.id] = box('group\u0000' + g.id, word + g.label, []);
      hosts[g.host].children.push(groups[g.id]);
    });
    topology.ends.forEach(function (e) {
      var node = {
        id: e.id,
        width: Math.max(60, e.label.length * CHAR + 18),
        height: END_HEIGHT,
        labels: [{ text: e.label }],
      };
      (e.group === null ? hosts[e.host] : groups[e.group]).children.push(node);
    });
    var edges = [];
    topology.segments.forEach(function (s) {
      s.tails.forEach(function (t, i) {
        edges.push({
          id: 'edge\u0000' + s.id + '\u0000' + i,
          sources: [s.head],
          targets: [t],
          labels:
            i === 0
              ? [{ text: s.id, width: Math.max(LABEL_WIDTH, s.id.length * CHAR + 12), height: LABEL_HEIGHT }]
              : [],
        });
      });
    });
    return {
      id: 'root',
      layoutOptions: {
        'elk.algorithm': 'layered',
        'elk.direction': 'RIGHT',
        'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
        'elk.json.shapeCoords': 'ROOT',
        'elk.json.edgeCoords': 'ROOT',
        'elk.spacing.nodeNode': '24',
        'elk.layered.spacing.nodeNodeBetweenLayers': '40',
        'elk.spacing.edgeLabel': '4',
        'elk.edgeLabels.inline': 'false',
        'elk.padding': '[top=12,left=12,bottom=12,right=12]',
      },
      children: topology.hosts.map(function (h) {
        return hosts[h.id];
      }),
      edges: edges,
    };
  }

  /** Every box and end of a laid-out graph, with its parent's id and where it is. */
  function rects(laid) {
    var out = [];
    (function walk(node, parent) {
      (node.children || []).forEach(function (c) {
        out.push({ id: c.id, parent: parent, x: c.x, y: c.y, width: c.width, height: c.height });
        walk(c, c.id);
      });
    })(laid, laid.id);
    return out;
  }

  /** Pairs of siblings that overlap, and children that stick out of their box (none when well laid). */
  function overlaps(laid) {
    var all = rects(laid);
    var byId = {};
    all.forEach(function (r) {
      byId[r.id] = r;
    });
    var bad = [];
    all.forEach(function (a, i) {
      all.slice(i + 1).forEach(function (b) {
        if (a.parent !== b.parent) return;
        var apart =
          a.x + a.width <= b.x || b.x + b.width <= a.x || a.y + a.height <= b.y || b.y + b.height <= a.y;
        if (!apart) bad.push(a.id + ' overlaps ' + b.id);
      });
      var p = byId[a.parent];
      if (p && (a.x < p.x || a.y < p.y || a.x + a.width > p.x + p.width || a.y + a.height > p.y + p.height))
        bad.push(a.id + ' is outside ' + p.id);
    });
    return bad;
  }

  /** Bytes per second as the page writes them. */
  function rate(bps) {
    var units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
    var v = bps;
    var u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return (u === 0 ? String(Math.round(v)) : v.toFixed(1)) + ' ' + units[u];
  }

  return { toElk: toElk, rects: rects, overlaps: overlaps, rate: rate };
});
