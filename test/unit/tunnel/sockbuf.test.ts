/**
 * The receive buffer the daemon gives charon's UDP sockets (src/tunnel/charon.ts,
 * native/sockbuf.c), on a process of the test's own that holds a UDP socket, as charon does.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { native } from '../../../src/native';
import { CHARON_RCVBUF, udpSocketFds } from '../../../src/tunnel/charon';
import { sh } from '../../helpers/netns';

describe("another process's UDP socket, as charon's", () => {
  let holder: ChildProcess;
  let port = 0;

  before(async () => {
    // a UDP socket bound in another process, which prints its port once bound
    holder = spawn(
      process.execPath,
      [
        '-e',
        "const s = require('node:dgram').createSocket('udp4');" +
          "s.bind(0, '127.0.0.1', () => console.log(s.address().port)); setInterval(() => {}, 1000);",
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    port = await new Promise<number>((resolve) =>
      holder.stdout!.once('data', (d: Buffer) => resolve(Number(d))),
    );
  });
  after(() => holder.kill('SIGKILL'));

  /** The socket's receive buffer as `ss` reads it from the kernel (skmem's rb). */
  const rcvbuf = (): number => {
    const out = sh('ss', '-uanmH', 'src', `127.0.0.1:${port}`);
    return Number(/rb(\d+)/.exec(out)?.[1]);
  };

  it('finds its UDP sockets, and only those', () => {
    const fds = udpSocketFds(holder.pid!);
    assert.equal(fds.length, 1, `one UDP socket: ${fds.join(' ')}`);
    assert.ok(!fds.includes(1), 'not its stdout (a unix socket pair)');
  });

  it('raises the buffer of the socket the process holds, past net.core.rmem_max', () => {
    const [fd] = udpSocketFds(holder.pid!);
    const before = rcvbuf();
    assert.ok(before < CHARON_RCVBUF, `the default first: ${before}`);
    const size = native().raiseRcvbuf(holder.pid!, fd, CHARON_RCVBUF);
    assert.equal(size, 2 * CHARON_RCVBUF, 'the kernel doubles what it is given');
    assert.equal(rcvbuf(), 2 * CHARON_RCVBUF, 'the same socket, seen by the kernel');
    assert.ok(holder.exitCode === null, 'the process holding it goes on');
  });

  it('says what is wrong with the errno name', () => {
    // (its stdin is /dev/null)
    assert.throws(() => native().raiseRcvbuf(holder.pid!, 0, CHARON_RCVBUF), { code: 'ENOTSOCK' });
    assert.throws(() => native().raiseRcvbuf(holder.pid!, 999, CHARON_RCVBUF), { code: 'EBADF' });
    assert.throws(() => native().raiseRcvbuf(0x3ffffff, 3, CHARON_RCVBUF), { code: 'ESRCH' });
    assert.throws(() => native().raiseRcvbuf(holder.pid!, 3, 0), { code: 'EINVAL' });
  });
});
