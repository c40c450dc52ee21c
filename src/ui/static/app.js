/*
 * The web view's page: one event stream from the daemon (/events). A `topology` event is laid
 * out (elkjs, in its Web Worker) and drawn as SVG; a `stats` event only changes the numbers,
 * states and health on what is drawn. Clicking a segment shows what `list --json` knows of
 * it. Elements carry the data attributes tools and tests read: data-segment, data-state,
 * data-up-bps, data-down-bps on a segment; data-end and data-ns on an end.
 */
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';
  var G = window.WormholeGraph;
  var elk = new window.ELK({ workerUrl: '/elk-worker.js' });
  var graph = document.getElementById('graph');
  var statusEl = document.getElementById('status');
  var detail = document.getElementById('detail');
  /** The topology drawn, and each layout asked for (only the newest is drawn). */
  var current = null;
  var asked = 0;
  var lastStats = {};

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) {
      e.setAttribute(k, String(attrs[k]));
    });
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, words, cls) {
    var t = el('text', { x: x, y: y, class: cls || '' }, parent);
    t.textContent = words;
    return t;
  }

  function status(word) {
    statusEl.textContent = word;
    statusEl.setAttribute('data-status', word);
  }

  /** Draw a laid-out topology (boxes first, then edges, then ends on top). */
  function draw(topology, laid) {
    var svg = el('svg', {
      width: Math.ceil(laid.width),
      height: Math.ceil(laid.height),
      viewBox: '0 0 ' + Math.ceil(laid.width) + ' ' + Math.ceil(laid.height),
    });
    var kinds = {};
    topology.hosts.forEach(function (h) {
      kinds['host\u0000' + h.id] = h.local ? 'host local' : 'host peer';
    });
    topology.groups.forEach(function (g) {
      kinds['group\u0000' + g.id] = g.kind;
    });
    var ends = {};
    topology.ends.forEach(function (e) {
      ends[e.id] = e;
    });
    var boxes = el('g', { class: 'boxes' }, svg);
    var edges = el('g', { class: 'edges' }, svg);
    var nodes = el('g', { class: 'ends' }, svg);
    (function walk(node) {
      (node.children || []).forEach(function (c) {
        var e = ends[c.id];
        var g = el('g', {}, e ? nodes : boxes);
        el('rect', { x: c.x, y: c.y, width: c.width, height: c.height, rx: e ? 4 : 8 }, g);
        if (e) {
          g.setAttribute('class', 'end');
          g.setAttribute('data-end', e.end);
          g.setAttribute('data-ns', e.ns);
          text(g, c.x + 9, c.y + 17, e.label);
        } else {
          g.setAttribute('class', 'box ' + kinds[c.id]);
          g.setAttribute('data-box', c.labels[0].text);
          text(g, c.x + 10, c.y + 19, c.labels[0].text, 'title');
          walk(c);
        }
        g.setAttribute('data-id', c.id);
      });
    })(laid);
    var bySegment = {};
    topology.segments.forEach(function (s) {
      var g = el('g', { class: 'segment' + (s.pending ? ' pending' : '') + (s.leg ? ' leg' : '') }, edges);
      g.setAttribute('data-segment', s.id);
      if (s.leg) g.setAttribute('data-leg', s.leg);
      bySegment[s.id] = { g: g, segment: s };
      g.addEventListener('click', function () {
        show(s.id);
      });
    });
    laid.edges.forEach(function (edge) {
      var parts = edge.id.split('\u0000');
      var seg = bySegment[parts[1]];
      (edge.sections || []).forEach(function (sec) {
        var pts = [sec.startPoint].concat(sec.bendPoints || [], [sec.endPoint]);
        var d = pts
          .map(function (p, i) {
            return (i === 0 ? 'M' : 'L') + p.x + ' ' + p.y;
          })
          .join(' ');
        el('path', { d: d, class: 'wire', 'data-tail': parts[2] }, seg.g);
        var end = sec.endPoint;
        el('circle', { cx: end.x, cy: end.y, r: 3, class: 'tip' }, seg.g);
      });
      (edge.labels || []).forEach(function (l) {
        el('rect', { x: l.x, y: l.y, width: l.width, height: l.height, rx: 4, class: 'label' }, seg.g);
        text(seg.g, l.x + 6, l.y + 14, parts[1], 'id');
        text(seg.g, l.x + 6, l.y + 28, '', 'state');
        text(seg.g, l.x + 6, l.y + 42, '', 'rates');
        text(seg.g, l.x + 6, l.y + 55, '', 'note');
      });
    });
    graph.replaceChildren(svg);
    apply(lastStats);
  }

  /** Numbers, states and health onto what is drawn; nothing moves. */
  function apply(stats) {
    lastStats = stats;
    if (!current) return;
    current.segments.forEach(function (s) {
      var st = stats[s.id];
      var g = graph.querySelector('[data-segment="' + CSS.escape(s.id) + '"]');
      if (!st || !g) return;
      g.setAttribute('data-state', st.state);
      g.setAttribute('data-up-bps', String(st.upBps));
      g.setAttribute('data-down-bps', String(st.downBps));
      var set = function (cls, words) {
        var t = g.querySelector('text.' + cls);
        if (t) t.textContent = words;
      };
      set('state', st.state + (st.open ? ' \u00b7 ' + st.open + ' open' : ''));
      set('rates', '\u2191 ' + G.rate(st.upBps) + '  \u2193 ' + G.rate(st.downBps));
      set('note', st.note);
      s.tails.forEach(function (t, i) {
        var end = graph.querySelector('[data-id="' + CSS.escape(t) + '"]');
        if (end) end.setAttribute('data-health', s.pending ? 'pending' : st.health[i] || 'unknown');
      });
    });
  }

  function layout(data) {
    var mine = ++asked;
    // the numbers that came with it, unless a stats event brings newer ones before it is drawn
    lastStats = data.stats;
    elk.layout(G.toElk(data.topology)).then(
      function (laid) {
        if (mine !== asked) return;
        current = data.topology;
        draw(data.topology, laid);
        status(data.topology.segments.length + ' segments');
      },
      function (err) {
        status('layout failed: ' + err);
      },
    );
  }

  /** What `list --json` knows of a segment, beside the drawing. */
  function show(id) {
    fetch('/segment/' + encodeURIComponent(id)).then(function (r) {
      return r.text().then(function (body) {
        detail.hidden = false;
        detail.querySelector('h2').textContent = id;
        detail.querySelector('pre').textContent = r.ok ? body : body || r.statusText;
      });
    });
  }

  // the panel goes away when clicked
  detail.addEventListener('click', function () {
    detail.hidden = true;
  });

  var events = new EventSource('/events');
  events.addEventListener('topology', function (m) {
    layout(JSON.parse(m.data));
  });
  events.addEventListener('stats', function (m) {
    apply(JSON.parse(m.data));
  });
  events.onopen = function () {
    status('live');
  };
  events.onerror = function () {
    status('reconnecting');
  };
})();
