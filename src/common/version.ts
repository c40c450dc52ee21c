/**
 * The version both programs print (`wormhole --version`, `wormholed --version`): package.json's,
 * read once, when first asked (never at start: a command that does not ask pays nothing).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** package.json at the root; this file runs compiled, from dist/src/common/. */
const PACKAGE_JSON = path.resolve(__dirname, '../../../package.json');

let cached: string | undefined;

/** The package's version, e.g. `0.1.0`. */
export function packageVersion(): string {
  if (cached === undefined) {
    const pkg = JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
  }
  return cached;
}
