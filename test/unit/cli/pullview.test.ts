/**
 * The pull's view (src/cli/pullview.ts): plain lines where stdout is not a terminal, one per
 * layer and status; at a terminal one line per layer redrawn in place with its bar and sizes;
 * text from the engine with its control characters escaped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PullView, layerLine } from '../../../src/cli/pullview';

const MiB = 1024 * 1024;

describe('the pull view', () => {
  it('plain: a line per layer and status change, none per byte count', () => {
    let out = '';
    const v = new PullView({ write: (t) => (out += t), live: false });
    v.show({ image: 'app', layer: 'l1', status: 'Pulling fs layer' });
    v.show({ image: 'app', layer: 'l1', status: 'Downloading', current: 1, total: 4 });
    v.show({ image: 'app', layer: 'l1', status: 'Downloading', current: 2, total: 4 });
    v.show({ image: 'app', layer: 'l2', status: 'Downloading', current: 1, total: 4 });
    v.show({ image: 'app', status: 'Status: Downloaded newer image for app:latest' });
    assert.equal(
      out,
      [
        'pulling app: l1 Pulling fs layer',
        'pulling app: l1 Downloading',
        'pulling app: l2 Downloading',
        'pulling app: Status: Downloaded newer image for app:latest',
        '',
      ].join('\n'),
    );
  });

  it('live: the lines drawn again in place, each layer on its own line with its bar', () => {
    const writes: string[] = [];
    const v = new PullView({ write: (t) => writes.push(t), live: true });
    v.show({ image: 'app', layer: 'l1', status: 'Pulling fs layer' });
    assert.equal(writes[0], '\x1b[2Kpulling app\n\x1b[2K  l1: Pulling fs layer\n');
    v.show({ image: 'app', layer: 'l1', status: 'Downloading', current: MiB, total: 4 * MiB });
    v.show({ image: 'app', layer: 'l2', status: 'Waiting' });
    // back up over the two lines drawn, then three
    assert.ok(writes[1].startsWith('\x1b[2F'), JSON.stringify(writes[1]));
    assert.ok(writes[2].startsWith('\x1b[2F'), JSON.stringify(writes[2]));
    assert.equal(
      writes[2].slice('\x1b[2F'.length),
      `\x1b[2Kpulling app\n\x1b[2K  l1: Downloading [=======>${' '.repeat(22)}] 1.0 MiB / 4.0 MiB\n\x1b[2K  l2: Waiting\n`,
    );
    v.show({ image: 'app', layer: 'l1', status: 'Pull complete' });
    assert.ok(writes[3].startsWith('\x1b[3F'));
    assert.match(writes[3], /l1: Pull complete\n/);
  });

  it('a full bar, and what came from the engine escaped', () => {
    assert.equal(
      layerLine({ image: 'x', layer: 'l', status: 'Extracting', current: 4, total: 4 }),
      `l: Extracting [${'='.repeat(30)}] 4 B / 4 B`,
    );
    let out = '';
    const v = new PullView({ write: (t) => (out += t), live: false });
    v.show({ image: 'a\x1b[2Jb', layer: 'l\x07', status: 'bad\x1b]0;title\x07' });
    assert.equal(out, 'pulling a?[2Jb: l? bad?]0;title?\n');
  });
});
