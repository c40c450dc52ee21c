/**
 * Where the engine is found (src/docker/host.ts): DOCKER_HOST first, then Docker's socket,
 * then rootful Podman's, and what a message tells a user to start.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_DOCKER_HOST, PODMAN_HOST, engineHost, startHint } from '../../../src/docker/host';

/** A filesystem holding only these sockets. */
const having =
  (...paths: string[]) =>
  (p: string): boolean =>
    paths.includes(p);

describe('the engine host', () => {
  it('takes DOCKER_HOST whatever sockets exist', () => {
    const all = having('/var/run/docker.sock', '/run/podman/podman.sock');
    assert.equal(engineHost('unix:///tmp/x.sock', all), 'unix:///tmp/x.sock');
    assert.equal(engineHost('tcp://10.0.0.1:2375', all), 'tcp://10.0.0.1:2375');
  });

  it("prefers Docker's socket, finds Podman's when there is no Docker socket", () => {
    assert.equal(
      engineHost(undefined, having('/var/run/docker.sock', '/run/podman/podman.sock')),
      DEFAULT_DOCKER_HOST,
    );
    assert.equal(engineHost(undefined, having('/run/podman/podman.sock')), PODMAN_HOST);
    assert.equal(
      engineHost('', having('/run/podman/podman.sock')),
      PODMAN_HOST,
      'an empty DOCKER_HOST is unset',
    );
  });

  it("names Docker's socket when neither is there (for the message saying it is not running)", () => {
    assert.equal(engineHost(undefined, having()), DEFAULT_DOCKER_HOST);
  });

  it('tells what to start', () => {
    assert.equal(startHint(DEFAULT_DOCKER_HOST), 'start dockerd');
    assert.match(startHint(PODMAN_HOST), /podman system service/);
    assert.match(startHint('unix:///tmp/t/podman.sock'), /podman system service/);
  });
});
