/**
 * The CLI shares only the wire schema, the client and common helpers with the daemon: it must
 * never pull in daemon code (segments, proxy, namespaces, Docker, tunnels).
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
