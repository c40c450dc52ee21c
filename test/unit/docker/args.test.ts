/**
 * The docker-run ARGS grammar (parseRunArgs): what it reads, and every way it refuses.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type RunSpec, isImageReference, parseRunArgs } from '../../../src/docker/args';
import { WormholeError } from '../../../src/common/errors';

const base: RunSpec = { image: '', cmd: [], env: [], binds: [], labels: {} };
const digest = 'sha256:' + 'a'.repeat(64);

describe('docker-run ARGS: what is read', () => {
  const good: [string[], Partial<RunSpec>][] = [
    [['wormhole/mysql'], { image: 'wormhole/mysql' }],
    // one quoted word holding the image and its command, as the seed writes it
    [
      ['local/pong nc -ll -p 9001 -e cat'],
      { image: 'local/pong', cmd: ['nc', '-ll', '-p', '9001', '-e', 'cat'] },
    ],
    // several words, and a mix of both; any white space splits
    [['local/pong', 'nc', '-l'], { image: 'local/pong', cmd: ['nc', '-l'] }],
    [['local/pong nc', '-l -p', '9'], { image: 'local/pong', cmd: ['nc', '-l', '-p', '9'] }],
    [['  img\tcmd\n arg  '], { image: 'img', cmd: ['cmd', 'arg'] }],
    // options after the image belong to the command
    [['img --privileged -e X=1'], { image: 'img', cmd: ['--privileged', '-e', 'X=1'] }],
    // each accepted option, in each of its spellings
    [['-e A=1 img'], { image: 'img', env: ['A=1'] }],
    [['--env A=1 img'], { image: 'img', env: ['A=1'] }],
    [['--env=A=1 img'], { image: 'img', env: ['A=1'] }],
    [['-e=A=1 img'], { image: 'img', env: ['A=1'] }],
    [['-eA=1 img'], { image: 'img', env: ['A=1'] }],
    [['-e A= img'], { image: 'img', env: ['A='] }],
    [['-e A=x=y img'], { image: 'img', env: ['A=x=y'] }],
    [['--name db1 img'], { image: 'img', name: 'db1' }],
    [['--name=my_db.2-x img'], { image: 'img', name: 'my_db.2-x' }],
    [['-v /data:/var/lib/mysql img'], { image: 'img', binds: ['/data:/var/lib/mysql'] }],
    [['--volume /data:/d:ro img'], { image: 'img', binds: ['/data:/d:ro'] }],
    [['--volume=dbdata:/d:rw img'], { image: 'img', binds: ['dbdata:/d:rw'] }],
    [['-v/a:/b img'], { image: 'img', binds: ['/a:/b'] }],
    [['-l team=db img'], { image: 'img', labels: { team: 'db' } }],
    [['--label=x img'], { image: 'img', labels: { x: '' } }],
    [['-lcom.example.tier=back img'], { image: 'img', labels: { 'com.example.tier': 'back' } }],
    [['--stop-timeout 1 img'], { image: 'img', stopTimeout: 1 }],
    [['--stop-timeout=0 img'], { image: 'img', stopTimeout: 0 }],
    [
      ['-e A=1', '--env=B=two', '--name db1', '-v /a:/b -l k=v', 'mariadb:10.11 mariadbd --port 3307'],
      {
        image: 'mariadb:10.11',
        cmd: ['mariadbd', '--port', '3307'],
        env: ['A=1', 'B=two'],
        name: 'db1',
        binds: ['/a:/b'],
        labels: { k: 'v' },
      },
    ],
    // `--` ends the options
    [['-- img'], { image: 'img' }],
    [['-e A=1 -- img -e B'], { image: 'img', env: ['A=1'], cmd: ['-e', 'B'] }],
    // image references
    [['busybox:1.36'], { image: 'busybox:1.36' }],
    [['registry.local:5000/team/app:v1.2_rc-3'], { image: 'registry.local:5000/team/app:v1.2_rc-3' }],
    [['localhost/app'], { image: 'localhost/app' }],
    [[`team/app@${digest}`], { image: `team/app@${digest}` }],
    [[`app:1@${digest}`], { image: `app:1@${digest}` }],
    [['a__b/c.d-e--f'], { image: 'a__b/c.d-e--f' }],
    // shell metacharacters after the image are bytes of the command's arguments, never
    // interpreted: no substitution, no splitting on ; | &, no quotes removed, no globbing
    [['img sh -c $(rm -rf /);echo'], { image: 'img', cmd: ['sh', '-c', '$(rm', '-rf', '/);echo'] }],
    [
      ['img `reboot` | cat && x || y &'],
      { image: 'img', cmd: ['`reboot`', '|', 'cat', '&&', 'x', '||', 'y', '&'] },
    ],
    [
      ['img "a b" \'c\' * ~ $HOME >out <in'],
      { image: 'img', cmd: ['"a', 'b"', "'c'", '*', '~', '$HOME', '>out', '<in'] },
    ],
    [['img', 'a;b', '$(x)'], { image: 'img', cmd: ['a;b', '$(x)'] }],
    [['-e X=$(reboot);`id` img'], { image: 'img', env: ['X=$(reboot);`id`'] }],
  ];
  for (const [words, want] of good) {
    it(`reads ${JSON.stringify(words)}`, () => assert.deepEqual(parseRunArgs(words), { ...base, ...want }));
  }
});

describe('docker-run ARGS: what is refused', () => {
  const accepted =
    /before the image use -e\/--env NAME=VALUE, --name NAME, -v\/--volume SRC:DST\[:ro\|rw\], -l\/--label KEY\[=VALUE\], --stop-timeout SECONDS/;
  const bad: [string[], RegExp][] = [
    // nothing
    [[], /docker-run needs an image/],
    [[''], /docker-run needs an image/],
    [['  \t '], /docker-run needs an image/],
    [['-e A=1'], /docker-run needs an image/],
    [['--'], /docker-run needs an image/],
    // options that are not accepted, each named, with the accepted ones listed
    [['--privileged img'], /option --privileged is not supported/],
    [['--net=host img'], /option --net is not supported/],
    [['--network host img'], /option --network is not supported/],
    [['-p 80:80 img'], /option -p is not supported/],
    [['-d img'], /option -d is not supported/],
    [['-it img'], /option -i is not supported/],
    [['--rm img'], /option --rm is not supported/],
    [['--env-file /etc/shadow img'], /option --env-file is not supported/],
    [['--entrypoint sh img'], /option --entrypoint is not supported/],
    [['--cap-add=ALL img'], /option --cap-add is not supported/],
    [['--pid=host img'], /option --pid is not supported/],
    [['-u 0 img'], /option -u is not supported/],
    [['- img'], /option - is not supported/],
    [['--=x img'], /option -- is not supported/],
    [['-E A=1 img'], /option -E is not supported/],
    [['--ENV A=1 img'], /option --ENV is not supported/],
    // accepted options without a value
    [['-e'], /-e needs a value/],
    [['--env'], /--env needs a value/],
    [['--env= img'], /--env needs a value/],
    [['-e= img'], /-e needs a value/],
    [['--name'], /--name needs a value/],
    [['-v'], /-v needs a value/],
    [['--volume'], /--volume needs a value/],
    [['-l'], /-l needs a value/],
    [['--label'], /--label needs a value/],
    [['--stop-timeout'], /--stop-timeout needs a value/],
    [['--stop-timeout -1 img'], /--stop-timeout "-1" is not a number of seconds/],
    [['--stop-timeout 1s img'], /--stop-timeout "1s" is not a number of seconds/],
    // accepted options with a bad value
    [['-e A img'], /-e "A" is not NAME=VALUE/],
    [['-e =x img'], /-e "=x" is not NAME=VALUE/],
    [['-e 1A=x img'], /is not NAME=VALUE/],
    [['-e A;B=x img'], /is not NAME=VALUE/],
    [['--name bad/name img'], /--name "bad\/name" is not a valid container name/],
    [['--name x img'], /not a valid container name/],
    [['--name -x img'], /not a valid container name/],
    [['--name $(id) img'], /not a valid container name/],
    [[`--name ${'n'.repeat(129)} img`], /not a valid container name/],
    [['-v relative img'], /-v "relative" is not SRC:DST\[:ro\|rw\]/],
    [['-v /a:rel img'], /is not SRC:DST/],
    [['-v ./a:/b img'], /is not SRC:DST/],
    [['-v :/b img'], /is not SRC:DST/],
    [['-v /a:/b:rx img'], /is not SRC:DST/],
    [['-v /a:/b:ro:x img'], /is not SRC:DST/],
    [['-l =v img'], /-l "=v" is not KEY=VALUE/],
    [
      ['-l wormhole.owner=me img'],
      /-l "wormhole.owner=me": label keys starting with wormhole\. are wormhole's own/,
    ],
    [['--label=wormhole.segment=x img'], /are wormhole's own/],
    // images that are not image references
    [['Upper/Case'], /"Upper\/Case" is not a valid image name/],
    [['UPPER'], /not a valid image name/],
    [['img;touch /tmp/x'], /"img;touch" is not a valid image name/],
    [['$(reboot)'], /not a valid image name/],
    [['`id`'], /not a valid image name/],
    [['img|cat'], /not a valid image name/],
    [['img&&x'], /not a valid image name/],
    [['../../etc/passwd'], /not a valid image name/],
    [['/abs/path'], /not a valid image name/],
    [['img:'], /not a valid image name/],
    [['img:-tag'], /not a valid image name/],
    [[`img:${'t'.repeat(129)}`], /not a valid image name/],
    [['img@sha256:xyz'], /not a valid image name/],
    [['img@sha256:abc'], /not a valid image name/],
    [['a//b'], /not a valid image name/],
    [['a/-b'], /not a valid image name/],
    [['a..b'], /not a valid image name/],
    [['-host.example/a'], /option -h is not supported/],
    [[`${'a'.repeat(250)}/bcdef`], /not a valid image name/],
  ];
  for (const [words, msg] of bad) {
    it(`refuses ${JSON.stringify(words)}`, () => {
      assert.throws(
        () => parseRunArgs(words),
        (err: unknown) => {
          assert.ok(err instanceof WormholeError, 'a WormholeError');
          assert.equal(err.code, 'USAGE');
          assert.match(err.message, msg);
          assert.ok(!err.message.includes('\n'), 'one line');
          return true;
        },
      );
    });
  }
  it('names the accepted options when refusing one', () => {
    assert.throws(() => parseRunArgs(['--privileged img']), accepted);
  });
});

describe('image references', () => {
  const cases: [string, boolean][] = [
    ['wormhole/mysql', true],
    ['wormhole-test/echo:latest', true],
    ['docker.io/library/busybox:1.36', true],
    ['my.registry:5000/a/b/c:tag', true],
    ['localhost:5000/app', true],
    ['REGISTRY.EXAMPLE/app', true],
    ['Upper/app', false],
    ['app/Upper', false],
    ['', false],
    ['a b', false],
    ['a\nb', false],
    ['a:b:c', false],
  ];
  for (const [ref, ok] of cases) {
    it(`${JSON.stringify(ref)} is ${ok ? '' : 'not '}one`, () => assert.equal(isImageReference(ref), ok));
  }
});
