import { parsePlan, tokenize } from '../../api/grammar';
import { type Command, commandArgs, printJson, progressTo, withDaemon } from '../command';

export const create: Command = {
  name: 'create',
  summary: 'create a segment (a proxy from a head to a tail)',
  json: true,
  flagsFirst: true,
  usage: `usage: wormhole create [--json] ACTION...

Actions, read left to right (see the README for the whole grammar):
  id ID              the segment's id (default: a random UUID)
  url URL            [tcp|udp://][NS@][host][:port]; NS is an 'ip netns' name or a path
                     like /proc/PID/ns/net; or a unix socket: unix://[NS@]/PATH (in the
                     end's filesystem: a container's with docker-ns), unix://[NS@]@NAME
                     (abstract), a head's file mode as ?mode=0600 (default 0660)
  docker-ns [ID]     the namespace of a running container (none: the host's own)
  docker-run ARGS    start a container (image, then its command) and use its namespace
  tail               the following actions set the tail
  trigger            like tail, and the following actions run on the first connection
  child              a second segment whose head is this segment's tail
  chain              like child, and this segment's tail becomes the child's head
  remote HOST        the child segment lives on the peer HOST
  tunnel HOST        an encrypted L3 tunnel to HOST, then as remote through it
  udptunnel HOST     as tunnel, carried in UDP
  proxy-protocol V   (tail) each connection to the tail starts with a PROXY v1 or v2 header
  transparent        (tail) the tail sees the client's own address and port (no loopback or unix tail)
  also               (tail) another tail, starting from a copy of the one before
  docker-label K=V   (tail) every running container with the label is a tail, followed
                     as containers start and stop
  balance POLICY     with several tails: round-robin (default), least-conn, source
  health DURATION    check each tail with a TCP connect every DURATION (default 5s), or
                     health off; a tail that fails gets no new connection until it passes
  idle DURATION      with a trigger: after DURATION (30s, 5m, 1h, seconds) with no
                     connection and no byte, stop what the trigger started (its
                     containers are stopped, kept, and started again by the next one)
  idle-action A      with idle: stop (default) or pause (docker pause: frozen, thawed by
                     the next connection in milliseconds)
  allow CIDR         (head, repeatable) clients only from these networks (a bare address:
                     /32 or /128); others are reset, counted refused, and wake nothing
  wake-on-data       with a trigger: a client counts once it sent a byte (a connect-and-
                     close wakes nothing; not for servers that speak first)
  ready MODE         (tail) dial a connection only once the tail is ready, holding
                     clients meanwhile (up to the dial timeout): ready health (its
                     container's HEALTHCHECK is healthy), ready banner (a probe connection
                     gets a first byte), ready exec "CMD ARGS" (the command, run in its
                     container with no shell, exits 0; tried every 200 ms)
  dial-timeout D     this segment's own --dial-timeout (how long clients wait for its tail)

Defaults: head tcp://127.0.0.1, tail = head's protocol and port on 127.0.0.1. tcp and unix
join each other; udp joins only udp.
Prints "ID URL", URL being where the head listens. --json (before the actions) prints
{"id": ID, "url": URL, "segments": [{"id": ID, "url": URL}, ...]}: the segment, then every
segment made with it (its children).

  wormhole create url :8080 tail url :80
  wormhole create url :3306 docker-ns tail docker-ns $mysql
  wormhole create url :3306 tail url unix:///run/mysqld/mysqld.sock docker-ns $mysql
  wormhole create url :80 trigger docker-run wormhole/wordpress child url :3306 trigger docker-run wormhole/mysql
  wormhole create url :3306 idle 10m trigger docker-run wormhole/mysql
  wormhole create url :3306 dial-timeout 60s trigger docker-run wormhole/mysql ready banner
  wormhole create url :8080 tail url :80 docker-ns app1 also docker-ns app2 balance least-conn
  wormhole create url :8080 tail url :80 docker-label app=web health 2s`,
  async run(args, ctx) {
    const actions = tokenize(commandArgs(this, args).positional);
    parsePlan(actions); // refuse a malformed create before reaching the daemon
    // (progress frames asked for only where they are shown)
    const progress = ctx.progress ? { progress: true } : {};
    const res = await withDaemon(ctx, (c) =>
      c.call('create', { actions, ...progress }, undefined, progressTo(ctx)),
    );
    const top = res.segments[0];
    if (ctx.json)
      printJson(ctx, {
        id: top.id,
        url: top.url,
        segments: res.segments.map((s) => ({ id: s.id, url: s.url })),
      });
    else ctx.out(`${top.id} ${top.url}`);
    return 0;
  },
};
