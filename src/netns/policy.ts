/**
 * The routes a `transparent` tail needs in its namespace, made and removed with `ip` and
 * `iptables` (argument arrays, never a shell; `nsenter --net=` to run them in the namespace).
 *
 * The engine dials the tail from the client's own address (IP_TRANSPARENT, native/
 * transparent.c), its packets marked M. The tail's replies go to the client's address, which
 * is not this namespace's: left alone they would leave by its default route. So, in that
 * namespace only:
 *   - iptables, mangle OUTPUT: a packet marked M saves M on its conntrack entry; a packet of
 *     an entry marked M (the tail's replies) is marked M in its turn (and so routed again);
 *   - `ip rule fwmark M lookup M`, and in table M one route, `local default dev lo`: a packet
 *     marked M is delivered here, to the socket bound to the client's address.
 * Nothing else in the namespace is touched: other connections have no mark. The rules carry
 * the comment `wormhole transparent ID`, the rule and table the segment's own number: what
 * a daemon killed before it removed them is found by those and removed when the segment is
 * built again (install removes first), or deleted.
 */
import { type ExecResult, run } from '../common/exec';

/** Where the rule goes among the namespace's rules: before `main` (32766), after `local` (0). */
const PRIORITY = '9000';

/** One family's routes for one segment in one namespace (null: the daemon's own). */
export interface TransparentRoutes {
  ns: string | null;
  family: 4 | 6;
  /** The segment's mark, and the number of its routing table. */
  mark: number;
  /** The segment's id, in the rules' comment. */
  tag: string;
}

/** `file args` run inside the namespace. */
function inNs(ns: string | null, file: string, args: string[]): Promise<ExecResult> {
  return ns === null ? run(file, args) : run('nsenter', [`--net=${ns}`, '--', file, ...args]);
}

function iptables(r: TransparentRoutes): string {
  return r.family === 6 ? 'ip6tables' : 'iptables';
}

/** The two mangle rules (after -A or -D). */
function mangleRules(r: TransparentRoutes): string[][] {
  const hex = `0x${r.mark.toString(16)}`;
  const comment = ['-m', 'comment', '--comment', `wormhole transparent ${r.tag}`];
  return [
    ['OUTPUT', '-m', 'connmark', '--mark', hex, ...comment, '-j', 'MARK', '--set-mark', hex],
    ['OUTPUT', '-m', 'mark', '--mark', hex, ...comment, '-j', 'CONNMARK', '--set-mark', hex],
  ];
}

function ruleArgs(r: TransparentRoutes): string[] {
  return [`-${r.family}`, 'rule', 'del', 'fwmark', `0x${r.mark.toString(16)}`, 'lookup', String(r.mark)];
}

/** Run a delete until it fails (nothing more of it is there); at most `max` times. */
async function deleteAll(del: () => Promise<unknown>, max = 16): Promise<void> {
  for (let i = 0; i < max; i++)
    if (
      !(await del().then(
        () => true,
        () => false,
      ))
    )
      return;
}

/** Remove a segment's routes from a namespace: all there are of them (none is no error). */
export async function removeTransparentRoutes(r: TransparentRoutes): Promise<void> {
  for (const rule of mangleRules(r))
    await deleteAll(() => inNs(r.ns, iptables(r), ['-w', '-t', 'mangle', '-D', ...rule]));
  await deleteAll(() => inNs(r.ns, 'ip', ruleArgs(r)));
  await inNs(r.ns, 'ip', [`-${r.family}`, 'route', 'flush', 'table', String(r.mark)]).catch(() => undefined);
}

/**
 * Make a segment's routes in a namespace, once: what a daemon killed before left there of
 * them is removed first. Rejects (TOOL_FAILED, TOOL_MISSING) with what is made removed again.
 */
export async function installTransparentRoutes(r: TransparentRoutes): Promise<void> {
  await removeTransparentRoutes(r);
  const everywhere = r.family === 6 ? '::/0' : '0.0.0.0/0';
  try {
    await inNs(r.ns, 'ip', [
      `-${r.family}`,
      'route',
      'add',
      'local',
      everywhere,
      'dev',
      'lo',
      'table',
      String(r.mark),
    ]);
    const add = ruleArgs(r);
    add[2] = 'add';
    await inNs(r.ns, 'ip', [...add, 'priority', PRIORITY]);
    for (const rule of mangleRules(r)) await inNs(r.ns, iptables(r), ['-w', '-t', 'mangle', '-A', ...rule]);
  } catch (err) {
    await removeTransparentRoutes(r).catch(() => undefined);
    throw err;
  }
}

/**
 * A namespace's own address (its first of global scope, IPv4 before IPv6): what a
 * transparent tail in a container dials when its URL names no host. Undefined: none.
 */
export async function namespaceAddress(ns: string | null): Promise<string | undefined> {
  const { stdout } = await inNs(ns, 'ip', ['-j', 'addr', 'show', 'scope', 'global']);
  const links = JSON.parse(stdout) as { addr_info?: { family?: string; local?: string }[] }[];
  const all = links.flatMap((l) => l.addr_info ?? []);
  return (all.find((a) => a.family === 'inet') ?? all.find((a) => a.family === 'inet6'))?.local;
}

/** Has the namespace a default route (of the family)? Without one a tail's replies to a client have none. */
export async function hasDefaultRoute(ns: string | null, family: 4 | 6): Promise<boolean> {
  const { stdout } = await inNs(ns, 'ip', ['-j', `-${family}`, 'route', 'show', 'default']);
  return (JSON.parse(stdout) as unknown[]).length > 0;
}
