import type { EndpointInfo } from '../../api/protocol';
import { formatUrl } from '../../api/url';
import { UsageError } from '../../common/errors';
import { type Command, withDaemon } from '../command';

/** An end as `list` and `top` show it: its URL, `peer:HOST` for a remote one, `-` for none. */
export function endpoint(e: EndpointInfo | null): string {
  if (!e) return '-';
  if (e.peer) return `peer:${e.peer}`;
  const ns = e.container ? `docker:${e.container.slice(0, 12)}` : (e.ns ?? undefined);
  return formatUrl(e.proto, e.host, e.port, ns);
}

export const list: Command = {
  name: 'list',
  summary: 'list segments, one line each',
  json: true,
  usage: `usage: wormhole list [--json]

One line per segment: ID HEAD -> TAIL STATE CONNECTIONS [refused=N] [parent=ID] [remote].
refused counts connections and UDP sessions refused at the daemon's caps
(--max-connections, --max-udp-sessions). A segment the daemon could not build
again when it started is shown as ID URL failed: WHY (kept, and tried again at
the next start; delete forgets it). --json prints an array for scripts.

  wormhole list
  wormhole list --json`,
  async run(args, ctx) {
    const json = args.includes('--json');
    const extra = args.filter((a) => a !== '--json');
    if (extra.length > 0) throw new UsageError(`list: unexpected "${extra[0]}"`);
    const { segments } = await withDaemon(ctx, (c) => c.call('list', {}));
    if (json) {
      ctx.out(JSON.stringify(segments, null, 2));
      return 0;
    }
    for (const s of segments) {
      if (s.state === 'failed') {
        ctx.out(`${s.id} ${s.url} failed: ${s.error ?? 'unknown'}`);
        continue;
      }
      const refused = s.refused ? ` refused=${s.refused}` : '';
      const parent = s.parent ? ` parent=${s.parent}` : '';
      const remote = s.remote ? ' remote' : '';
      ctx.out(
        `${s.id} ${endpoint(s.head)} -> ${endpoint(s.tail)} ${s.state} ${s.connections}${refused}${parent}${remote}`,
      );
    }
    return 0;
  },
};
