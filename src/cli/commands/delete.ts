import { UsageError } from '../../common/errors';
import { type Command, withDaemon } from '../command';

export const del: Command = {
  name: 'delete',
  summary: 'delete a segment, its children and the containers it started',
  usage: `usage: wormhole delete ID

  wormhole delete 3f2a...`,
  async run(args, ctx) {
    if (args.length !== 1) throw new UsageError('delete takes exactly one segment ID');
    await withDaemon(ctx, (c) => c.call('delete', { id: args[0] }));
    return 0;
  },
};
