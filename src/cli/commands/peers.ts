import type { PeerInfo } from '../../api/protocol';
import { type Command, commandArgs, printJson, withDaemon } from '../command';
import { ago, size, table } from '../format';

/** One row per peer channel under the header (nothing at all when there is none). */
export function peerRows(peers: PeerInfo[], now = Date.now()): string[] {
  if (peers.length === 0) return [];
  return table(
    ['HOST', 'STATE', 'RTT', 'STREAMS', 'UP', 'DOWN', 'SINCE'],
    peers.map((p) => [
      p.host,
      p.state,
      p.rttMs === null ? '-' : `${p.rttMs.toFixed(3)}ms`,
      String(p.streams),
      size(p.bytesUp),
      size(p.bytesDown),
      ago(p.since, now) + (p.state !== 'up' && p.lastError ? ` (${p.lastError})` : ''),
    ]),
  );
}

export const peers: Command = {
  name: 'peers',
  summary: 'list the channels to peers, one line each',
  json: true,
  usage: `usage: wormhole peers [--json]

One line per peer this daemon has a channel to (or tried to), under a header:
  HOST     the peer, as segments name it
  STATE    up; connecting (being opened); down (dropped or refused: opened again with
           backoff while the peer was ever up; the reason follows SINCE)
  RTT      the last keepalive's round trip ('-': none yet)
  STREAMS  streams open on the channel: proxied connections, UDP sessions, calls
  UP       bytes sent to the peer; DOWN bytes received (frames included)
  SINCE    how long it has been in its state
--json prints an array of {"host", "state", "rttMs", "streams", "bytesUp", "bytesDown",
"since"} (since: ms since the epoch; "lastError" when not up).

  wormhole peers
  wormhole peers --json`,
  async run(args, ctx) {
    commandArgs(this, args, 0);
    const res = await withDaemon(ctx, (c) => c.call('peers', {}));
    if (ctx.json) printJson(ctx, res.peers);
    else for (const line of peerRows(res.peers)) ctx.out(line);
    return 0;
  },
};
