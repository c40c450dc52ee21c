/**
 * The `docker-run ARGS` grammar: the ordinary `docker run` options users put before the image
 * (-e, --name, -v, -l, --stop-timeout), then the image, then its command. ARGS is one word or
 * several, and a word may hold several space-separated words
 * (`docker-run "local/pong nc -ll -p 9001 -e cat"`):
 * words are split on white space and nothing else, never given to a shell, so `;`, `$(...)`,
 * quotes or globs are just bytes of an argument.
 */
import { UsageError } from '../common/errors';

/** A parsed docker-run. */
export interface RunSpec {
  /** Image reference, e.g. `wormhole/mysql` or `registry:5000/team/app:1.2`. */
  image: string;
  /** The command given after the image (empty: the image's own). */
  cmd: string[];
  /** `NAME=VALUE` environment entries. */
  env: string[];
  /** Container name. */
  name?: string;
  /** `SRC:DST[:ro|rw]` bind mounts or named volumes. */
  binds: string[];
  /** Labels the user asked for (the daemon adds its own). */
  labels: Record<string, string>;
  /** Seconds a stop (idle) waits for the container to exit before killing it (Docker's default: 10). */
  stopTimeout?: number;
}

/** Label keys starting with this belong to the daemon. */
export const RESERVED_LABEL_PREFIX = 'wormhole.';

const ACCEPTED =
  '-e/--env NAME=VALUE, --name NAME, -v/--volume SRC:DST[:ro|rw], -l/--label KEY[=VALUE], --stop-timeout SECONDS';

type Option = 'env' | 'name' | 'volume' | 'label' | 'stop-timeout';
const LONG: Record<string, Option> = {
  '--env': 'env',
  '--name': 'name',
  '--volume': 'volume',
  '--label': 'label',
  '--stop-timeout': 'stop-timeout',
};
const SHORT: Record<string, Option> = { e: 'env', v: 'volume', l: 'label' };

// The image reference grammar of the Docker distribution project, written out here:
// [DOMAIN[:PORT]/]PATH[:TAG][@DIGEST]; PATH is lower-case components joined by `/`.
const DOMAIN_PART = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `${DOMAIN_PART}(?:\\.${DOMAIN_PART})*(?::[0-9]+)?`;
const PATH_PART = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[a-z][a-z0-9]*(?:[-_+.][a-z][a-z0-9]*)*:[0-9a-fA-F]{32,}';
const IMAGE = new RegExp(`^(?:(${DOMAIN})/)?${PATH_PART}(?:/${PATH_PART})*(?::${TAG})?(?:@${DIGEST})?$`);
/** Docker's own rule for container names. */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Environment variable and label keys. */
const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** A named volume (the source of `-v NAME:/dst`). */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Whether `image` is a well-formed image reference. */
export function isImageReference(image: string): boolean {
  const m = IMAGE.exec(image);
  if (!m) return false;
  // Without a `.`, `:` or `localhost`, a first component is a path component, so lower-case.
  const domain = m[1];
  if (domain && !/[.:]/.test(domain) && domain !== 'localhost' && domain !== domain.toLowerCase()) {
    return false;
  }
  return image.length <= 255;
}

function fail(message: string): never {
  throw new UsageError(`docker-run: ${message}`);
}

function checkEnv(opt: string, v: string): string {
  const at = v.indexOf('=');
  if (at <= 0 || !KEY.test(v.slice(0, at))) fail(`${opt} "${v}" is not NAME=VALUE`);
  return v;
}

function checkName(v: string): string {
  if (!CONTAINER_NAME.test(v) || v.length > 128) {
    fail(`--name "${v}" is not a valid container name (two or more of letters, digits, _ . -)`);
  }
  return v;
}

function checkVolume(opt: string, v: string): string {
  const parts = v.split(':');
  const [src, dst, mode] = parts;
  const ok =
    (parts.length === 2 || parts.length === 3) &&
    (src.startsWith('/') || VOLUME_NAME.test(src)) &&
    dst.startsWith('/') &&
    (mode === undefined || mode === 'ro' || mode === 'rw');
  if (!ok) fail(`${opt} "${v}" is not SRC:DST[:ro|rw] (SRC an absolute path or a volume name, DST absolute)`);
  return v;
}

function checkLabel(opt: string, v: string): [string, string] {
  const at = v.indexOf('=');
  const key = at < 0 ? v : v.slice(0, at);
  if (!KEY.test(key)) fail(`${opt} "${v}" is not KEY=VALUE`);
  if (key.startsWith(RESERVED_LABEL_PREFIX)) {
    fail(`${opt} "${v}": label keys starting with ${RESERVED_LABEL_PREFIX} are wormhole's own`);
  }
  return [key, at < 0 ? '' : v.slice(at + 1)];
}

/**
 * Parse docker-run's words into a RunSpec. Throws a UsageError (code USAGE) that says what is
 * wrong: an option that is not accepted (naming the accepted ones), a missing or malformed
 * value, a missing or malformed image.
 */
export function parseRunArgs(words: readonly string[]): RunSpec {
  const w = words.flatMap((x) => x.split(/\s+/)).filter((x) => x.length > 0);
  const spec: RunSpec = { image: '', cmd: [], env: [], binds: [], labels: {} };
  let i = 0;
  while (i < w.length && w[i].startsWith('-')) {
    const word = w[i++];
    if (word === '--') break;
    // --opt=value, --opt value, -o value, -o=value, -ovalue
    let shown: string;
    let option: Option | undefined;
    let inline: string | undefined;
    if (word.startsWith('--')) {
      const eq = word.indexOf('=');
      shown = eq > 0 ? word.slice(0, eq) : word;
      inline = eq > 0 ? word.slice(eq + 1) : undefined;
      option = LONG[shown];
    } else {
      shown = word.slice(0, 2);
      option = word.length >= 2 ? SHORT[word[1]] : undefined;
      if (word.length > 2) inline = word[2] === '=' ? word.slice(3) : word.slice(2);
    }
    if (!option) fail(`option ${shown} is not supported; before the image use ${ACCEPTED}`);
    let value: string;
    if (inline !== undefined) value = inline;
    else if (i < w.length) value = w[i++];
    else fail(`${shown} needs a value`);
    if (value === '') fail(`${shown} needs a value`);
    switch (option) {
      case 'env':
        spec.env.push(checkEnv(shown, value));
        break;
      case 'name':
        spec.name = checkName(value);
        break;
      case 'volume':
        spec.binds.push(checkVolume(shown, value));
        break;
      case 'label': {
        const [k, v] = checkLabel(shown, value);
        spec.labels[k] = v;
        break;
      }
      case 'stop-timeout':
        if (!/^\d{1,5}$/.test(value)) fail(`${shown} "${value}" is not a number of seconds`);
        spec.stopTimeout = Number(value);
        break;
    }
  }
  if (i >= w.length) throw new UsageError('docker-run needs an image, e.g. docker-run wormhole/mysql');
  const image = w[i++];
  if (!isImageReference(image)) {
    fail(`"${image}" is not a valid image name ([REGISTRY/]NAME[:TAG][@DIGEST], NAME in lower case)`);
  }
  spec.image = image;
  spec.cmd = w.slice(i);
  return spec;
}
