/**
 * What a key may do (SPEC "Trust: who may do what"), as pure functions: the rules of a keys
 * file's options, and whether an address, an image or a method falls under them. A kind of
 * right with no option of its kind is not restricted; one with options is restricted to them.
 * The daemon asks here, and only here (src/trust/plan.ts walks a create for it).
 */
import * as path from 'node:path';
import type { Method } from '../api/protocol';

/**
 * An address a rule allows: `[NS@]HOST:PORTS` or `[NS@]unix:PATH`. `ns` undefined: the host's
 * own namespace only; a glob otherwise (`*` any namespace, `docker:*` any container's).
 */
export type AddrRule =
  | { text: string; ns?: string; host: string; low: number; high: number }
  | { text: string; ns?: string; path: string };

/** An address a request would listen on or reach (ns null: the host's own namespace). */
export type Addr = { ns: string | null; host: string; port: number } | { ns: string | null; path: string };

/** A key's rights; null: that kind is not restricted. */
export interface Rights {
  readOnly: boolean;
  peer: boolean;
  listen: AddrRule[] | null;
  open: AddrRule[] | null;
  image: string[] | null;
}

/** A key the daemon knows: its name (logs, `owner`) and its rights. */
export interface KeyRights {
  name: string;
  rights: Rights;
}

/** `-K`'s key: every right. */
export const ALL_RIGHTS: Rights = { readOnly: false, peer: true, listen: null, open: null, image: null };

/** What a `read-only` key may call: nothing that changes anything. */
export const READ_ONLY_METHODS: ReadonlySet<Method> = new Set<Method>([
  'ping',
  'list',
  'export',
  'peers',
  'tunnel-list',
  'ui',
]);

/** What only a key with `peer` may call: what a peer daemon asks of this one. */
export const PEER_METHODS: ReadonlySet<Method> = new Set<Method>([
  'channel',
  'attach',
  'peer-create',
  'peer-tunnel',
]);

/** Does this method change something (its request is logged with the key that made it)? */
export function changes(method: Method): boolean {
  return !READ_ONLY_METHODS.has(method) && method !== 'attach' && method !== 'channel';
}

/** Why this key may not call this method (undefined: it may). */
export function methodRefusal(key: KeyRights, method: Method): string | undefined {
  if (PEER_METHODS.has(method) && !key.rights.peer)
    return `key "${key.name}" may not act as a peer (${method}): its line in the keys file has no peer option`;
  if (key.rights.readOnly && !READ_ONLY_METHODS.has(method))
    return `key "${key.name}" is read-only: it may not ${method}`;
  return undefined;
}

/** Read `[NS@]HOST:PORTS`, `[NS@]unix:PATH` or `*`; throws an Error saying what is wrong. */
export function parseAddrRule(text: string): AddrRule {
  if (text === '*') return { text, host: '*', low: 0, high: 65535 };
  let rest = text;
  let ns: string | undefined;
  if (!rest.startsWith('unix:')) {
    const at = rest.indexOf('@');
    if (at === 0) throw new Error(`"${text}": the namespace before "@" is empty`);
    if (at > 0) [ns, rest] = [rest.slice(0, at), rest.slice(at + 1)];
  }
  if (rest.startsWith('unix:')) {
    const p = rest.slice(5);
    if (!p.startsWith('/') && !p.startsWith('@'))
      throw new Error(`"${text}": a unix address is unix:/PATH or unix:@NAME`);
    return { text, ns, path: p };
  }
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+):(\*|\d{1,5}(?:-\d{1,5})?)$/.exec(rest);
  if (!m) throw new Error(`"${text}" is not HOST:PORT, HOST:LOW-HIGH or unix:PATH (* for any host or port)`);
  const host = m[1].replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (m[2] === '*') return { text, ns, host, low: 0, high: 65535 };
  const [low, high = low] = m[2].split('-').map(Number);
  if (high > 65535 || low > high) throw new Error(`"${text}": ports run from 0 to 65535, low to high`);
  return { text, ns, host, low, high };
}

/** `*` any run of characters but `/` (any at all when `slashes`), `?` one; the rest literal. */
export function globMatch(glob: string, text: string, slashes = false): boolean {
  const any = slashes ? '.*' : '[^/]*';
  const one = slashes ? '.' : '[^/]';
  const re = glob.replace(/[.+^${}()|[\]\\*?]/g, (c) => (c === '*' ? any : c === '?' ? one : `\\${c}`));
  return new RegExp(`^${re}$`, 's').test(text);
}

function nsMatches(rule: AddrRule, ns: string | null): boolean {
  if (rule.ns === undefined) return ns === null;
  return ns !== null && globMatch(rule.ns, ns, true);
}

/** Does this rule allow this address? */
export function ruleMatches(rule: AddrRule, addr: Addr): boolean {
  if (!nsMatches(rule, addr.ns)) return false;
  if ('path' in rule) {
    if (!('path' in addr)) return false;
    // `..` is resolved first: a rule for /run/app/* never reaches /run/app/../docker.sock
    const p = addr.path.startsWith('/') ? path.posix.normalize(addr.path) : addr.path;
    return globMatch(rule.path, p);
  }
  if ('path' in addr) return false;
  const host = addr.host.toLowerCase();
  return (rule.host === '*' || rule.host === host) && addr.port >= rule.low && addr.port <= rule.high;
}

function allowed(rules: AddrRule[] | null, addr: Addr): boolean {
  return rules === null || rules.some((r) => ruleMatches(r, addr));
}

/** May this key open a head (listen) here? */
export function mayListen(key: KeyRights, addr: Addr): boolean {
  return allowed(key.rights.listen, addr);
}

/** May this key's segments reach this tail? */
export function mayOpen(key: KeyRights, addr: Addr): boolean {
  return allowed(key.rights.open, addr);
}

/** May this key's `docker-run` run this image (as the create writes it)? */
export function mayRunImage(key: KeyRights, image: string): boolean {
  return key.rights.image === null || key.rights.image.some((g) => globMatch(g, image));
}

/** An address as refusals write it: `[NS@]HOST:PORT`, `[NS@]unix:PATH`. */
export function formatAddr(addr: Addr): string {
  const ns = addr.ns === null ? '' : `${addr.ns}@`;
  if ('path' in addr) return `${ns}unix:${addr.path}`;
  return `${ns}${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${addr.port}`;
}

/** May this key delete (or attach to) a segment `owner` made? Its own, and admin any. */
export function mayManage(key: KeyRights, owner: string): boolean {
  return key.name === owner || key.rights === ALL_RIGHTS;
}
