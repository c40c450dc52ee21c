import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type RunSpec, parseRunArgs } from '../../src/docker/args';

const base: RunSpec = { image: '', cmd: [], env: [], binds: [], labels: {} };

describe('docker-run ARGS', () => {
  const good: [string[], Partial<RunSpec>][] = [
    [['wormhole/mysql'], { image: 'wormhole/mysql' }],
    [
      ['local/pong nc -ll -p 9001 -e cat'],
      { image: 'local/pong', cmd: ['nc', '-ll', '-p', '9001', '-e', 'cat'] },
    ],
    [['local/pong', 'nc', '-l'], { image: 'local/pong', cmd: ['nc', '-l'] }],
    [
      ['-e A=1 --env=B=two --name db1 mariadb:10.11'],
      { image: 'mariadb:10.11', env: ['A=1', 'B=two'], name: 'db1' },
    ],
    [
      ['-v /data:/var/lib/mysql:ro -l team=db --label=x img'],
      { image: 'img', binds: ['/data:/var/lib/mysql:ro'], labels: { team: 'db', x: '' } },
    ],
    [
      ['registry.local:5000/team/app@sha256:' + 'a'.repeat(64)],
      { image: 'registry.local:5000/team/app@sha256:' + 'a'.repeat(64) },
    ],
    // shell metacharacters are bytes of an argument, never interpreted
    [['img sh -c $(rm -rf /);echo'], { image: 'img', cmd: ['sh', '-c', '$(rm', '-rf', '/);echo'] }],
  ];
  for (const [words, want] of good) {
    it(`reads ${JSON.stringify(words)}`, () => assert.deepEqual(parseRunArgs(words), { ...base, ...want }));
  }
  const bad: [string[], RegExp][] = [
    [[''], /needs an image/],
    [['--name'], /--name needs a value/],
    [['--privileged img'], /option --privileged is not supported; before the image use -e\/--env/],
    [['--net=host img'], /option --net is not supported/],
    [['-p 80:80 img'], /option -p is not supported/],
    [['-e =x img'], /is not NAME=VALUE/],
    [['--name bad/name img'], /not a valid container name/],
    [['-v relative img'], /is not SRC:\/DST/],
    [['-v /a:rel img'], /is not SRC:\/DST/],
    [['-l wormhole.owner=me img'], /reserved/],
    [['Upper/Case'], /not a valid image name/],
    [['img;touch /tmp/x'], /not a valid image name/],
    [['$(reboot)'], /not a valid image name/],
  ];
  for (const [words, msg] of bad) {
    it(`refuses ${JSON.stringify(words)}`, () => assert.throws(() => parseRunArgs(words), msg));
  }
});
