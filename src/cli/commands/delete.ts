import { UsageError, WormholeError } from '../../common/errors';
import { type Command, commandArgs, printJson, resolveSegmentId, withDaemon } from '../command';

export const del: Command = {
  name: 'delete',
  summary: 'delete a segment, its children and the containers it started',
  json: true,
  takesId: true,
  usage: `usage: wormhole delete [--json] ID

ID is a segment's id or any unique prefix of one (as docker's): an exact id wins, a prefix
that several ids start with is refused, naming them. A child made by child or chain is
deleted with its parent. A segment still being created (its create-time steps running, not
yet listed) is deleted by its whole id: its build is aborted. --json prints {"id": ID,
"deleted": [IDS]} (the segment and its children).

  wormhole delete 3f2a
  wormhole delete --json web-1`,
  async run(args, ctx) {
    const { positional } = commandArgs(this, args, 1);
    if (positional.length === 0) throw new UsageError('needs a segment ID (or a unique prefix of one)');
    if (positional[0] === '') throw new UsageError('an empty segment id');
    const res = await withDaemon(ctx, async (c) => {
      // an exact id first, with no list (which is long with thousands of segments); a prefix
      // only when no segment has that id
      try {
        return { id: positional[0], ...(await c.call('delete', { id: positional[0] })) };
      } catch (e) {
        if (!(e instanceof WormholeError) || e.code !== 'NOT_FOUND') throw e;
      }
      const id = await resolveSegmentId(c, positional[0]);
      return { id, ...(await c.call('delete', { id })) };
    });
    if (ctx.json) printJson(ctx, { id: res.id, deleted: res.deleted });
    return 0;
  },
};
