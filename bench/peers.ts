/**
 * The proxies wormhole is put beside, each started the way a user (or Docker) starts it,
 * listening on 127.0.0.1. Each returns the pids whose memory counts as the proxy's.
 */
import type { ChildProcess } from 'node:child_process';
import { start } from './env';
import { childrenOf } from './measure';

/** A proxy in front of one backend, or one process in front of several (pasta). */
export interface Peer {
  /** The processes that carry the connections: their whole RSS is the proxy's memory. */
  pids: () => number[];
  /** The process started (the one that listens). */
  proc: ChildProcess;
}

/** socat, forking a process per connection, as its manual shows it for a TCP forward. */
export function socat(listen: number, toHost: string, to: number): Peer {
  const p = start('socat', [
    `TCP-LISTEN:${listen},bind=127.0.0.1,reuseaddr,fork,backlog=1024`,
    `TCP:${toHost}:${to}`,
  ]);
  return { pids: () => [p.pid!, ...childrenOf(p.pid!)], proc: p };
}

/**
 * Docker's userland proxy, with the arguments dockerd gives it for `-p 127.0.0.1:L:C`: the
 * container's address is its veth address across namespaces, 127.0.0.1 on one namespace.
 * `hostIp`: the address it listens on (another loopback address keeps a scene's ports apart).
 */
export function dockerProxy(listen: number, toHost: string, to: number, hostIp = '127.0.0.1'): Peer {
  const p: ChildProcess = start(
    'docker-proxy',
    [
      '-proto',
      'tcp',
      '-host-ip',
      hostIp,
      '-host-port',
      String(listen),
      '-container-ip',
      toHost,
      '-container-port',
      String(to),
    ],
    true, // it reports readiness on fd 3, as dockerd expects
  );
  return { pids: () => [p.pid!], proc: p };
}

/**
 * pasta (Debian's passt), the port forwarder of rootless Podman: it joins the namespace and
 * forwards host ports to ports inside it; connections from the host's loopback are spliced
 * to the namespace's loopback, so a service on 127.0.0.1 inside is reached. One process for
 * every forward. `-t` only the given ports (its default, `auto`, would also forward every
 * port that comes to listen inside), `-u none -T none -U none`: no UDP and nothing from the
 * namespace back to the host. `--config-net` as the command line has it (it gives
 * the namespace a tap interface with the host's address; the loopback path does not use it).
 * `--runas 0` keeps root, so it can enter a namespace made by `ip netns add`.
 */
export function pasta(ns: string, forwards: [hostPort: number, nsPort: number][]): Peer {
  const p = start('pasta', [
    '--runas',
    '0',
    '--netns',
    `/var/run/netns/${ns}`,
    ...forwards.flatMap(([h, n]) => ['-t', `127.0.0.1/${h}:${n}`]),
    '-u',
    'none',
    '-T',
    'none',
    '-U',
    'none',
    '--config-net',
    '-f', // foreground: stopped with the others at the end
    '-q',
  ]);
  return { pids: () => [p.pid!], proc: p };
}
