/**
 * The `docker-run ARGS` grammar: image, then its command, with the ordinary `docker run`
 * options users put before the image (-e, --name, -v, -l). Words are split on white space
 * and nothing is ever given to a shell: a `;` or `$(...)` is just bytes of an argument.
 */
import { UsageError } from '../common/errors';

/** A parsed docker-run. */
export interface RunSpec {
  image: string;
  cmd: string[];
  env: string[];
  name?: string;
  binds: string[];
  labels: Record<string, string>;
}

/** Docker image references: [registry[:port]/]path[:tag][@digest], lower-case path. */
const IMAGE =
  /^(?:[a-zA-Z0-9.-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const SUPPORTED = '-e/--env K=V, --name NAME, -v/--volume SRC:DST[:ro], -l/--label K=V';

/** Parse docker-run's words. Throws UsageError saying what is wrong. */
export function parseRunArgs(words: readonly string[]): RunSpec {
  const w = words.flatMap((x) => x.split(/\s+/)).filter((x) => x.length > 0);
  const spec: RunSpec = { image: '', cmd: [], env: [], binds: [], labels: {} };
  let i = 0;
  const value = (opt: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    if (i >= w.length) throw new UsageError(`docker-run: ${opt} needs a value`);
    return w[i++];
  };
  while (i < w.length && w[i].startsWith('-')) {
    const word = w[i++];
    const eq = word.indexOf('=');
    const opt = word.startsWith('--') && eq > 0 ? word.slice(0, eq) : word;
    const inline = word.startsWith('--') && eq > 0 ? word.slice(eq + 1) : undefined;
    switch (opt) {
      case '-e':
      case '--env': {
        const v = value(opt, inline);
        if (!KEY.test(v.split('=')[0])) throw new UsageError(`docker-run: ${opt} "${v}" is not NAME=VALUE`);
        spec.env.push(v);
        break;
      }
      case '--name': {
        const v = value(opt, inline);
        if (!NAME.test(v)) throw new UsageError(`docker-run: --name "${v}" is not a valid container name`);
        spec.name = v;
        break;
      }
      case '-v':
      case '--volume': {
        const v = value(opt, inline);
        const parts = v.split(':');
        if (
          parts.length < 2 ||
          parts.length > 3 ||
          !parts[1].startsWith('/') ||
          parts[0] === '' ||
          (parts[2] !== undefined && !/^(ro|rw)$/.test(parts[2]))
        ) {
          throw new UsageError(`docker-run: ${opt} "${v}" is not SRC:/DST[:ro|rw]`);
        }
        spec.binds.push(v);
        break;
      }
      case '-l':
      case '--label': {
        const v = value(opt, inline);
        const at = v.indexOf('=');
        const key = at < 0 ? v : v.slice(0, at);
        if (!KEY.test(key) || key.startsWith('wormhole.')) {
          throw new UsageError(
            `docker-run: ${opt} "${v}" is not KEY=VALUE (keys starting with wormhole. are reserved)`,
          );
        }
        spec.labels[key] = at < 0 ? '' : v.slice(at + 1);
        break;
      }
      default:
        throw new UsageError(`docker-run: option ${opt} is not supported; before the image use ${SUPPORTED}`);
    }
  }
  if (i >= w.length) throw new UsageError('docker-run needs an image, e.g. docker-run wormhole/mysql');
  const image = w[i++];
  if (image.length > 255 || !IMAGE.test(image)) {
    throw new UsageError(`docker-run: "${image}" is not a valid image name`);
  }
  spec.image = image;
  spec.cmd = w.slice(i);
  return spec;
}
