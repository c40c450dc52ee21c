import type { EndpointInfo } from '../../api/protocol';
import { formatUrl } from '../../api/url';
import { UsageError } from '../../common/errors';
import { type Command, withDaemon } from '../command';

function endpoint(e: EndpointInfo | null): string {
  if (!e) return '-';
  if (e.peer) return `peer:${e.peer}`;
  const ns = e.container ? `docker:${e.container.slice(0, 12)}` : (e.ns ?? undefined);
  return formatUrl(e.proto, e.host, e.port, ns);
}

/** A container as people write it: a full id shortened as docker does, a name as it is. */
function short(container: string): string {
  return /^[0-9a-f]{64}$/.test(container) ? container.slice(0, 12) : container;
}

export const list: Command = {
  name: 'list',
  summary: 'list segments, one line each',
  json: true,
  usage: `usage: wormhole list [--json]

One line per segment: ID HEAD -> TAIL STATE CONNECTIONS [down=END:CONTAINER,...]
[refused=N] [parent=ID] [remote]. STATE is ready, waiting (a trigger not run yet),
triggering, or container-down: an end's container has stopped (down= says which end and
container); the segment follows it and goes on when it runs again, in its new namespace.
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
      const down = s.down?.length
        ? ` down=${s.down.map((d) => `${d.end}:${short(d.container)}`).join(',')}`
        : '';
      const refused = s.refused ? ` refused=${s.refused}` : '';
      const parent = s.parent ? ` parent=${s.parent}` : '';
      const remote = s.remote ? ' remote' : '';
      ctx.out(
        `${s.id} ${endpoint(s.head)} -> ${endpoint(s.tail)} ${s.state} ${s.connections}${down}${refused}${parent}${remote}`,
      );
    }
    return 0;
  },
};
