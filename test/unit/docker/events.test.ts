/**
 * The Engine API's event stream (src/docker/events.ts): JSON lines split anywhere, events
 * read from both of the engine's formats, and a watch against a fake engine that fails,
 * ends its stream (as a restarting dockerd does) and comes back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Docker } from '../../../src/docker';
import { FILTERED_ACTIONS, JsonLines, healthOf, parseContainerEvent } from '../../../src/docker/events';
import type { ContainerEvent } from '../../../src/segment/context';

function event(action: string, id: string, name: string): string {
  return JSON.stringify({
    status: action,
    id,
    from: 'img',
    Type: 'container',
    Action: action,
    Actor: { ID: id, Attributes: { name, image: 'img' } },
    scope: 'local',
    time: 1,
    timeNano: 1,
  });
}

describe('the event stream, line by line', () => {
  it('joins objects split across chunks and splits chunks holding several', () => {
    const text = `${event('start', 'a1', 'x')}\n${event('die', 'b2', 'ünïcode')}\n${event('destroy', 'c3', 'z')}\n`;
    const bytes = Buffer.from(text);
    for (const cut of [1, 7, 100, bytes.indexOf(Buffer.from('ü')) + 1, bytes.length - 1]) {
      const lines = new JsonLines();
      const got = [...lines.push(bytes.subarray(0, cut)), ...lines.push(bytes.subarray(cut))];
      assert.deepEqual(
        got.map((o) => parseContainerEvent(o)),
        [
          { id: 'a1', name: 'x', action: 'start' },
          { id: 'b2', name: 'ünïcode', action: 'die' },
          { id: 'c3', name: 'z', action: 'destroy' },
        ],
        `cut at ${cut}`,
      );
    }
    // byte by byte
    const lines = new JsonLines();
    const got: unknown[] = [];
    for (const b of bytes) got.push(...lines.push(Buffer.from([b])));
    assert.equal(got.length, 3);
  });

  it('skips what is not an object, and keeps going', () => {
    const lines = new JsonLines();
    assert.deepEqual(lines.push('garbage\n\n42\n{"a":'), []);
    assert.deepEqual(lines.push('1}\n'), [{ a: 1 }]);
  });

  it('reads the old format, and only container events', () => {
    assert.deepEqual(parseContainerEvent({ status: 'die', id: 'abc' }), {
      id: 'abc',
      action: 'die',
      name: undefined,
    });
    assert.equal(parseContainerEvent({ Type: 'network', Action: 'connect', Actor: { ID: 'n' } }), undefined);
    assert.equal(parseContainerEvent({ Type: 'container' }), undefined);
    assert.deepEqual(
      parseContainerEvent({
        Type: 'container',
        Action: 'start',
        Actor: { ID: 'i', Attributes: { name: '/n' } },
      }),
      { id: 'i', action: 'start', name: 'n' },
    );
  });

  it("reads Podman's events under Docker's names (its remove is destroy)", () => {
    // as Podman 4.3's compatible API sends them
    const podman = (action: string) => ({
      status: action,
      id: 'p1',
      Type: 'container',
      Action: action,
      Actor: { ID: 'p1', Attributes: { name: 'web', podId: '' } },
    });
    assert.deepEqual(parseContainerEvent(podman('remove')), { id: 'p1', action: 'destroy', name: 'web' });
    assert.deepEqual(parseContainerEvent(podman('died')), { id: 'p1', action: 'die', name: 'web' });
    assert.deepEqual(parseContainerEvent(podman('die')), { id: 'p1', action: 'die', name: 'web' });
    // a name that is a property of every object is not taken for one of Podman's
    assert.equal(parseContainerEvent(podman('constructor'))?.action, 'constructor');
  });

  it("asks for Docker's names and Podman's", () => {
    for (const a of ['start', 'die', 'destroy', 'died', 'remove']) assert.ok(FILTERED_ACTIONS.includes(a), a);
  });
});

describe('watching a fake engine', () => {
  it('reconnects after a failure and after the stream ends, says so, and stops when told', async () => {
    const sock = path.join(os.tmpdir(), `wh-fake-events-${randomBytes(4).toString('hex')}.sock`);
    const requests: string[] = [];
    const open: http.ServerResponse[] = [];
    const server = http.createServer((req, res) => {
      requests.push(req.url ?? '');
      const n = requests.length;
      if (n === 1) {
        // an engine that is starting
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end('{"message":"starting"}');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      if (n === 2) {
        // two events in one chunk, half of a third, then the engine goes away
        const third = event('start', 'id2', 'two');
        res.write(`${event('start', 'id1', 'one')}\n${event('die', 'id1', 'one')}\n${third.slice(0, 20)}`);
        setTimeout(() => res.end(), 50);
        return;
      }
      // one event in two chunks, and the stream stays open
      const e = `${event('destroy', 'id3', 'three')}\n`;
      res.write(e.slice(0, 10));
      setTimeout(() => res.write(e.slice(10)), 50);
      open.push(res);
    });
    await new Promise<void>((r) => server.listen(sock, r));
    const lines: { msg: string }[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${sock}`;
    let docker: Docker;
    try {
      docker = new Docker(log, 'owner', { callTimeoutMs: 2000 });
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
    const events: ContainerEvent[] = [];
    let connected = 0;
    let stop: (() => void) | undefined;
    try {
      assert.equal(requests.length, 0);
      stop = docker.watch({
        event: (e) => {
          events.push(e);
          if (e.id === 'id1' && e.action === 'start') throw new Error('a handler that fails');
        },
        connected: () => connected++,
      });
      const deadline = Date.now() + 20_000;
      while (events.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(events, [
        { id: 'id1', name: 'one', action: 'start' },
        { id: 'id1', name: 'one', action: 'die' },
        { id: 'id3', name: 'three', action: 'destroy' },
      ]);
      assert.equal(requests.length, 3, 'a failed request and an ended stream were both followed by another');
      assert.equal(connected, 2, 'told of each connection, so that it can check what it follows');
      const url = new URL(requests[0], 'http://x');
      assert.equal(url.pathname, '/events');
      assert.deepEqual(JSON.parse(url.searchParams.get('filters') ?? ''), {
        type: ['container'],
        event: ['start', 'die', 'destroy', 'died', 'remove'],
      });
      assert.ok(lines.some((l) => l.msg === 'docker event stream lost: reconnecting'));
      assert.ok(lines.some((l) => l.msg === 'docker event stream back'));
      assert.ok(
        lines.some((l) => l.msg === 'container event not handled'),
        'a failing handler is logged',
      );
      stop();
      stop = undefined;
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(requests.length, 3, 'no reconnection after stop');
      assert.ok(open.every((res) => res.destroyed || res.writableEnded || res.socket?.destroyed !== false));
    } finally {
      stop?.();
      for (const res of open) res.destroy();
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('health events (ready health)', () => {
  it("reads Docker's `health_status: STATUS` and Podman's attribute, and nothing else", () => {
    const docker = parseContainerEvent({
      Type: 'container',
      Action: 'health_status: healthy',
      Actor: { ID: 'abc', Attributes: { name: 'db' } },
    });
    assert.ok(docker);
    assert.equal(healthOf(docker), 'healthy');
    const podman = parseContainerEvent({
      Type: 'container',
      Action: 'health_status',
      Actor: { ID: 'abc', Attributes: { name: 'db', health_status: 'starting' } },
    });
    assert.ok(podman);
    assert.equal(healthOf(podman), 'starting');
    const start = parseContainerEvent({ Type: 'container', Action: 'start', Actor: { ID: 'abc' } });
    assert.ok(start);
    assert.equal(healthOf(start), undefined);
  });
});
