/**
 * The container follower (src/segment/follow.ts) against a fake runtime: which events move
 * which end, what it decides from the container's state, and when it watches at all.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { WormholeError } from '../../../src/common/errors';
import type { ContainerLocation, ContainerRuntime, ContainerWatcher } from '../../../src/segment/context';
import { ContainerFollower, type FollowedEnd } from '../../../src/segment/follow';

interface FakeContainer {
  id: string;
  name: string;
  /** Its namespace file while it runs, null while it is stopped. */
  nsPath: string | null;
}

/** A runtime whose containers the test sets; it counts its watches. */
class FakeRuntime implements ContainerRuntime {
  readonly all: FakeContainer[] = [];
  watcher: ContainerWatcher | undefined;
  watches = 0;
  stops = 0;
  /** Set: every look-up fails as an engine that does not answer. */
  unavailable = false;
  lookups = 0;

  add(id: string, name: string, nsPath: string | null): FakeContainer {
    const c = { id, name, nsPath };
    this.all.push(c);
    return c;
  }

  prepare(): Promise<void> {
    throw new Error('not used');
  }
  readonly probes = {
    healthy: (): Promise<void> => Promise.reject(new Error('not used')),
    exec: (): Promise<number> => Promise.reject(new Error('not used')),
  };
  run(): Promise<{ id: string; nsPath: string }> {
    throw new Error('not used');
  }
  remove(): Promise<void> {
    throw new Error('not used');
  }
  start(): Promise<{ id: string; nsPath: string }> {
    throw new Error('not used');
  }
  stop(): Promise<void> {
    throw new Error('not used');
  }
  pause(): Promise<void> {
    throw new Error('not used');
  }
  removeFor(): Promise<void> {
    throw new Error('not used');
  }
  withLabel(): Promise<ContainerLocation[]> {
    throw new Error('not used');
  }
  async namespaceOf(ref: string): Promise<string> {
    return (await this.locate(ref)).nsPath;
  }
  async locate(ref: string): Promise<ContainerLocation> {
    this.lookups++;
    await new Promise((r) => setImmediate(r));
    if (this.unavailable) throw new WormholeError('DOCKER_UNAVAILABLE', 'the engine does not answer');
    const c =
      this.all.find((x) => x.id === ref) ??
      this.all.find((x) => x.name === ref) ??
      this.all.find((x) => x.id.startsWith(ref));
    if (!c) throw new WormholeError('CONTAINER_NOT_FOUND', `container ${ref} does not exist`);
    if (!c.nsPath) throw new WormholeError('CONTAINER_NOT_RUNNING', `container ${ref} is not running`);
    return { id: c.id, name: c.name, nsPath: c.nsPath };
  }
  watch(w: ContainerWatcher): () => void {
    this.watches++;
    this.watcher = w;
    return () => {
      this.stops++;
      this.watcher = undefined;
    };
  }

  /** The engine says what a container did. */
  emit(action: string, c: FakeContainer): void {
    this.watcher?.event({ id: c.id, name: c.name, action });
  }
}

/** An end that records what it was told. */
function end(
  ref: string,
  c: FakeContainer,
  opts: { failUp?: () => boolean } = {},
): FollowedEnd & { calls: string[] } {
  const calls: string[] = [];
  return {
    segment: 'seg',
    side: 'tail',
    ref,
    id: c.id,
    nsPath: c.nsPath!,
    calls,
    down: () => calls.push('down'),
    up: async (ns) => {
      await new Promise((r) => setImmediate(r));
      if (opts.failUp?.()) throw new Error('cannot bind');
      calls.push(`up ${ns}`);
    },
  };
}

/** Let every queued check run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

function setup(): { rt: FakeRuntime; follower: ContainerFollower; lines: { msg: string }[] } {
  const lines: { msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const rt = new FakeRuntime();
  return { rt, follower: new ContainerFollower(rt, log), lines };
}

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const ID_C = 'c'.repeat(64);

describe('following containers', () => {
  it('watches only while an end follows a container', () => {
    const { rt, follower } = setup();
    const a = rt.add(ID_A, 'db', '/proc/1/ns/net');
    assert.equal(rt.watches, 0, 'nothing is asked before an end follows');
    const one = follower.follow(end('db', a));
    const two = follower.follow(end(ID_A, a));
    assert.equal(rt.watches, 1, 'one watch for every end');
    one.dispose();
    assert.equal(rt.stops, 0);
    two.dispose();
    two.dispose();
    assert.equal(rt.stops, 1, 'stopped with the last end');
    follower.follow(end('db', a));
    assert.equal(rt.watches, 2, 'started again for a new end');
  });

  it('pauses an end when its container dies and moves it when it starts again', async () => {
    const { rt, follower, lines } = setup();
    const a = rt.add(ID_A, 'db', '/proc/1/ns/net');
    const other = rt.add(ID_B, 'other', '/proc/9/ns/net');
    const e = end('db', a);
    follower.follow(e);
    rt.emit('die', other);
    rt.emit('start', other);
    await settle();
    assert.deepEqual(e.calls, [], "another container's events move nothing");
    a.nsPath = null;
    rt.emit('die', a);
    await settle();
    assert.deepEqual(e.calls, ['down']);
    a.nsPath = '/proc/2/ns/net';
    rt.emit('start', a);
    await settle();
    assert.deepEqual(e.calls, ['down', 'up /proc/2/ns/net']);
    assert.ok(lines.some((l) => l.msg === 'container stopped: segment paused'));
    assert.ok(lines.some((l) => l.msg === 'container started again: tail dials into its new namespace'));
    // a start it has already followed (the same namespace) changes nothing
    rt.emit('start', a);
    await settle();
    assert.equal(e.calls.length, 2);
  });

  it('decides from the state, not the event: a start whose container died again leaves the end down', async () => {
    const { rt, follower } = setup();
    const a = rt.add(ID_A, 'db', '/proc/1/ns/net');
    const e = end('db', a);
    follower.follow(e);
    a.nsPath = null;
    rt.emit('die', a);
    rt.emit('start', a); // it died again before the start was looked at
    rt.emit('die', a);
    await settle();
    assert.deepEqual(e.calls, ['down']);
    a.nsPath = '/proc/3/ns/net';
    rt.emit('start', a);
    await settle();
    assert.deepEqual(e.calls, ['down', 'up /proc/3/ns/net']);
  });

  it('follows a new container under the name the user gave, not under an id', async () => {
    const { rt, follower } = setup();
    const a = rt.add(ID_A, 'db', '/proc/1/ns/net');
    const byName = end('db', a);
    const byId = end(ID_A.slice(0, 12), a);
    follower.follow(byName);
    follower.follow(byId);
    rt.all.splice(0, 1); // removed
    rt.emit('destroy', a);
    await settle();
    assert.deepEqual(byName.calls, ['down']);
    assert.deepEqual(byId.calls, ['down']);
    const b = rt.add(ID_B, 'db', '/proc/5/ns/net');
    rt.emit('start', b);
    await settle();
    assert.deepEqual(byName.calls, ['down', 'up /proc/5/ns/net'], 'the name now names the new one');
    assert.deepEqual(byId.calls, ['down'], 'an id names one container: removed, it stays down');
    // from now on the name's end follows the new container's id
    b.nsPath = null;
    rt.emit('die', b);
    await settle();
    assert.deepEqual(byName.calls.slice(2), ['down']);
  });

  it('checks every end again when the watch (re)connects: what happened meanwhile is not missed', async () => {
    const { rt, follower } = setup();
    const a = rt.add(ID_A, 'web', '/proc/1/ns/net');
    const c = rt.add(ID_C, 'cache', '/proc/7/ns/net');
    const moved = end('web', a);
    const stopped = end('cache', c);
    follower.follow(moved);
    follower.follow(stopped);
    rt.watcher!.connected();
    await settle();
    assert.deepEqual([moved.calls, stopped.calls], [[], []], 'nothing changed');
    // the stream was lost while one restarted and the other stopped
    a.nsPath = '/proc/2/ns/net';
    c.nsPath = null;
    rt.watcher!.connected();
    await settle();
    assert.deepEqual(moved.calls, ['down', 'up /proc/2/ns/net']);
    assert.deepEqual(stopped.calls, ['down']);
  });

  it('changes nothing when the runtime cannot answer, and follows again when it can', async () => {
    const { rt, follower, lines } = setup();
    const a = rt.add(ID_A, 'db', '/proc/1/ns/net');
    const e = end('db', a);
    follower.follow(e);
    rt.unavailable = true;
    a.nsPath = '/proc/2/ns/net';
    rt.emit('start', a);
    await settle();
    assert.deepEqual(e.calls, []);
    assert.ok(lines.some((l) => l.msg === 'cannot tell whether a followed container runs'));
    rt.unavailable = false;
    rt.watcher!.connected();
    await settle();
    assert.deepEqual(e.calls, ['down', 'up /proc/2/ns/net']);
  });

  it('keeps an end down when it cannot follow its container, and tries again at the next start', async () => {
    const { rt, follower, lines } = setup();
    const a = rt.add(ID_A, 'db', '/proc/1/ns/net');
    let fail = true;
    const e = end('db', a, { failUp: () => fail });
    follower.follow(e);
    a.nsPath = '/proc/2/ns/net';
    rt.emit('start', a);
    await settle();
    assert.deepEqual(e.calls, ['down']);
    assert.ok(lines.some((l) => /cannot follow it: segment stays paused/.test(l.msg)));
    fail = false;
    a.nsPath = '/proc/3/ns/net';
    rt.emit('start', a);
    await settle();
    assert.deepEqual(e.calls, ['down', 'up /proc/3/ns/net']);
  });

  it('tells a disposed end nothing, even a check under way', async () => {
    const { rt, follower } = setup();
    const a = rt.add(ID_A, 'db', '/proc/1/ns/net');
    const e = end('db', a);
    const f = follower.follow(e);
    a.nsPath = '/proc/2/ns/net';
    const before = rt.lookups;
    rt.emit('start', a);
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(rt.lookups, before + 1, 'the look-up is under way');
    f.dispose();
    await settle();
    assert.deepEqual(e.calls, []);
  });
});
