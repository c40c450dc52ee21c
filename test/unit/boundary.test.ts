/**
 * The house's floors. The CLI shares only the wire schema, the client and common helpers with
 * the daemon: it must never pull in daemon code (segments, proxy, namespaces, Docker,
 * tunnels). And every import points down the layers: each room of src/ imports only the
 * rooms listed for it below (type-only imports too).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { it } from 'node:test';
import { ROOT } from '../helpers/daemon';

const FORBIDDEN = [
  'src/daemon',
  'src/segment',
  'src/proxy',
  'src/netns',
  'src/native',
  'src/docker',
  'src/tunnel',
  'src/store',
];

function resolve(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts')])
    if (fs.existsSync(candidate)) return candidate;
  return undefined;
}

it('the CLI reaches no daemon code, even indirectly', () => {
  const seen = new Set<string>();
  const todo = [path.join(ROOT, 'src/cli/main.ts')];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)[^'"]*from '([^']+)'/g)) {
      const next = resolve(file, m[1]);
      if (next) todo.push(next);
    }
  }
  const rel = [...seen].map((f) => path.relative(ROOT, f));
  assert.ok(rel.length > 5, 'the walk found the CLI files');
  assert.ok(rel.includes('src/client/index.ts'));
  const bad = rel.filter((f) => FORBIDDEN.some((d) => f.startsWith(d)));
  assert.deepEqual(bad, []);
});

/**
 * What each room of src/ may import (besides itself): the layers of the README's Design,
 * cli -> client -> api; daemon -> segment -> proxy, peer, netns, docker, tunnel, store;
 * proxy, peer, tunnel -> native; common under everything.
 */
const MAY_IMPORT: Record<string, string[]> = {
  common: [],
  native: ['common'],
  api: ['common'],
  store: ['api', 'common'],
  netns: ['native', 'common'],
  client: ['api', 'common'],
  cli: ['client', 'api', 'common'],
  proxy: ['netns', 'native', 'api', 'common'],
  docker: ['common'],
  tunnel: ['native', 'api', 'common'],
  trust: ['api', 'common'],
  ui: ['api', 'common'],
  peer: ['client', 'proxy', 'native', 'api', 'common'],
  segment: ['peer', 'proxy', 'netns', 'docker', 'tunnel', 'store', 'native', 'api', 'common'],
  daemon: [
    'trust',
    'ui',
    'segment',
    'peer',
    'client',
    'proxy',
    'netns',
    'docker',
    'tunnel',
    'store',
    'native',
    'api',
    'common',
  ],
};

it('every import points down the layers', () => {
  const src = path.join(ROOT, 'src');
  const bad: string[] = [];
  const rooms = fs.readdirSync(src).filter((d) => fs.statSync(path.join(src, d)).isDirectory());
  for (const room of rooms) {
    assert.ok(MAY_IMPORT[room], `src/${room} has its place in the layers (MAY_IMPORT)`);
    const files = fs.readdirSync(path.join(src, room), { recursive: true, encoding: 'utf8' });
    for (const f of files.filter((x) => x.endsWith('.ts'))) {
      const file = path.join(src, room, f);
      for (const m of fs.readFileSync(file, 'utf8').matchAll(/(?:import|export)[^'"]*from '([^']+)'/g)) {
        const target = resolve(file, m[1]);
        if (!target) continue;
        const to = path.relative(src, target).split(path.sep)[0];
        if (to !== room && !MAY_IMPORT[room].includes(to)) bad.push(`src/${room}/${f} imports src/${to}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});
