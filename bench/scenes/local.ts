/**
 * The two scenes on one machine, each with every proxy in front of the same iperf3 and echo
 * servers:
 * - one namespace: servers and proxies all on the host's 127.0.0.1;
 * - across namespaces (the seed's first example): the servers inside their own namespace,
 *   reached from a port on the host's 127.0.0.1.
 * With `--beside`, wormhole has a path for each build (a daemon each), measured in turns.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../config';
import {
  type Build,
  daemon,
  echoServer,
  iperfServer,
  missing,
  named,
  netns,
  port,
  veth,
  waitPort,
} from '../env';
import { dockerProxy, pasta, socat } from '../peers';
import type { PathSpec, Scene } from './paths';

const SOCAT_IDLE = (n: number): string =>
  `socat forks a process per connection (about 2.5 MiB of RSS each): memory is read up to ` +
  `${n.toLocaleString('en-US')} idle connections only`;
const NEEDS = {
  socat: { socat: 'socat' },
  dockerProxy: { 'docker-proxy': 'docker.io' },
  pasta: { pasta: 'passt' },
};

/**
 * Everything on the host's 127.0.0.1: wormhole (a row for each of `builds`), socat and
 * docker-proxy, and no proxy at all.
 */
export async function oneNamespace(cfg: Config, builds: Build[]): Promise<Scene> {
  const [iperf, echo] = [port(), port()];
  iperfServer(iperf, undefined, '127.0.0.1');
  echoServer('127.0.0.1', echo);
  await waitPort('127.0.0.1', iperf);
  await waitPort('127.0.0.1', echo);

  const paths: PathSpec[] = [{ name: 'direct', host: '127.0.0.1', iperf, echo }];

  for (const b of builds) paths.push(wormholePath(b, `:${iperf}`, `:${echo}`));

  paths.push(
    peerPath(
      'socat',
      NEEDS.socat,
      (i, e) => [socat(i, '127.0.0.1', iperf), socat(e, '127.0.0.1', echo)],
      cfg,
    ),
  );
  paths.push(
    peerPath(
      'docker-proxy',
      NEEDS.dockerProxy,
      (i, e) => [dockerProxy(i, '127.0.0.1', iperf), dockerProxy(e, '127.0.0.1', echo)],
      cfg,
    ),
  );
  paths.push({
    name: 'pasta',
    host: '127.0.0.1',
    iperf: 0,
    echo: 0,
    skip: 'pasta forwards into another namespace only: see the next table',
  });
  return { name: 'one namespace', paths };
}

/**
 * The servers inside namespace NS, listening on every address: wormhole and pasta reach them
 * on the namespace's own 127.0.0.1 (the seed's case); docker-proxy reaches them as Docker
 * does, on the namespace's veth address, and so does socat (a plain TCP forward cannot enter
 * a namespace); `direct` is the veth link with no proxy.
 */
export async function acrossNamespaces(cfg: Config, builds: Build[]): Promise<Scene> {
  const tag = randomBytes(3).toString('hex');
  const ns = netns(`whbx-${tag}`);
  const n = 1 + (randomBytes(1)[0] % 250); // a /24 of its own, so two runs rarely collide
  const [hostIp, nsIp] = [`10.78.${n}.1`, `10.78.${n}.2`];
  veth(undefined, ns, `vbh${tag}`, `vbn${tag}`, hostIp, nsIp);
  const [iperf, echo] = [port(), port()];
  iperfServer(iperf, ns);
  echoServer('0.0.0.0', echo, ns);
  await waitPort(nsIp, iperf);
  await waitPort(nsIp, echo);

  const paths: PathSpec[] = [{ name: 'direct (veth, no proxy)', host: nsIp, iperf, echo }];

  for (const b of builds)
    paths.push(wormholePath(b, `tcp://${ns}@127.0.0.1:${iperf}`, `tcp://${ns}@127.0.0.1:${echo}`));
  // `transparent` (issue 21), this build only: the tail dialed from the client's own address
  // (IP_TRANSPARENT, the segment's mark and routes in the namespace), beside the same tail
  // dialed plainly. A transparent tail is never loopback, so both reach the veth address; and
  // their clients come from the host's veth address, not 127.0.0.1, whose ports the kernel
  // reuses at once (tcp_tw_reuse for loopback) while the daemon's side of the last
  // connection from that port still waits in TIME_WAIT in the namespace
  const [vi, ve] = [`tcp://${ns}@${nsIp}:${iperf}`, `tcp://${ns}@${nsIp}:${echo}`];
  paths.push(wormholePath(builds[0], vi, ve, { host: hostIp, name: 'wormhole (to the veth address)' }));
  paths.push(
    wormholePath(builds[0], vi, ve, {
      host: hostIp,
      tail: ['transparent'],
      name: 'wormhole transparent (to the veth address)',
    }),
  );

  paths.push(
    peerPath(
      'socat (to the veth address)',
      NEEDS.socat,
      (i, e) => [socat(i, nsIp, iperf), socat(e, nsIp, echo)],
      cfg,
    ),
  );
  paths.push(
    peerPath(
      'docker-proxy (to the veth address)',
      NEEDS.dockerProxy,
      (i, e) => [dockerProxy(i, nsIp, iperf), dockerProxy(e, nsIp, echo)],
      cfg,
    ),
  );
  paths.push(
    peerPath(
      'pasta',
      NEEDS.pasta,
      (i, e) => {
        const one = pasta(ns, [
          [i, iperf],
          [e, echo],
        ]);
        return [one, one]; // one process forwards both ports
      },
      cfg,
    ),
  );
  return { name: 'across namespaces', paths };
}

/**
 * wormhole's path: a daemon of `build` with two segments, to the iperf3 and echo servers' URLs;
 * `o.host`: the heads' address (127.0.0.1), `o.tail`: more tail actions for both, `o.name`: the
 * row's (`wormhole`).
 */
function wormholePath(
  build: Build,
  iperfUrl: string,
  echoUrl: string,
  o: { host?: string; tail?: string[]; name?: string } = {},
): PathSpec {
  const wh = daemon(build);
  const [wi, we] = [port(), port()];
  const host = o.host ?? '127.0.0.1';
  wh.cli('create', 'url', `tcp://${host}:${wi}`, 'tail', 'url', iperfUrl, ...(o.tail ?? []));
  wh.cli('create', 'url', `tcp://${host}:${we}`, 'tail', 'url', echoUrl, ...(o.tail ?? []));
  return { name: named(build, o.name ?? 'wormhole'), host, iperf: wi, echo: we, pids: () => [wh.pid] };
}

/**
 * A peer proxy's path: two forwards (iperf3, echo) on fresh host ports, started unless a
 * tool is missing. Memory counts the processes behind the echo port (where the idle
 * connections are), which for pasta is its one process.
 */
function peerPath(
  name: string,
  needs: Record<string, string>,
  startBoth: (iperfHead: number, echoHead: number) => [{ pids: () => number[] }, { pids: () => number[] }],
  cfg: Config,
): PathSpec {
  const [i, e] = [port(), port()];
  const skip = missing(needs);
  if (skip) return { name, host: '127.0.0.1', iperf: i, echo: e, skip };
  const [, echoPeer] = startBoth(i, e);
  const idleMax = name.startsWith('socat')
    ? { count: cfg.socatIdleMax, why: SOCAT_IDLE(cfg.socatIdleMax) }
    : undefined;
  return { name, host: '127.0.0.1', iperf: i, echo: e, pids: echoPeer.pids, idleMax };
}
