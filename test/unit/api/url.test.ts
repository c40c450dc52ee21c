import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatUnixUrl, formatUrl, parsePort, parseUrl, type UrlParts } from '../../../src/api/url';

describe('parseUrl', () => {
  const good: [string, UrlParts][] = [
    [':3306', { port: 3306 }],
    ['tcp://127.0.0.1:80', { proto: 'tcp', host: '127.0.0.1', port: 80 }],
    ['udp://:53', { proto: 'udp', port: 53 }],
    ['TCP://:1', { proto: 'tcp', port: 1 }],
    ['tcp://', { proto: 'tcp' }],
    ['localhost', { host: 'localhost' }],
    ['db.example.com:5432', { host: 'db.example.com', port: 5432 }],
    ['blue@:5000', { ns: 'blue', port: 5000 }],
    ['tcp://blue@10.0.0.1:5000', { proto: 'tcp', ns: 'blue', host: '10.0.0.1', port: 5000 }],
    ['/proc/123/ns/net@127.0.0.1:80', { ns: '/proc/123/ns/net', host: '127.0.0.1', port: 80 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[fe80::1]', { host: 'fe80::1' }],
    ['udp://ns1@[2001:db8::2]:53', { proto: 'udp', ns: 'ns1', host: '2001:db8::2', port: 53 }],
    [':0', { port: 0 }],
    [':65535', { port: 65535 }],
    ['unix:///run/mysqld/mysqld.sock', { proto: 'unix', path: '/run/mysqld/mysqld.sock' }],
    ['unix://@wh-app', { proto: 'unix', path: '@wh-app' }],
    ['unix://@/tmp/.X11-unix/X0', { proto: 'unix', path: '@/tmp/.X11-unix/X0' }],
    ['unix://blue@/run/a.sock', { proto: 'unix', ns: 'blue', path: '/run/a.sock' }],
    ['unix://blue@@name', { proto: 'unix', ns: 'blue', path: '@name' }],
    ['unix:///proc/12/ns/net@/run/a.sock', { proto: 'unix', ns: '/proc/12/ns/net', path: '/run/a.sock' }],
    ['unix:///proc/12/ns/net@@name', { proto: 'unix', ns: '/proc/12/ns/net', path: '@name' }],
    ['unix:///tmp/a@b.sock', { proto: 'unix', path: '/tmp/a@b.sock' }],
    ['unix:///run/a.sock?mode=0600', { proto: 'unix', path: '/run/a.sock', mode: 0o600 }],
    ['unix:///run/a.sock?mode=666', { proto: 'unix', path: '/run/a.sock', mode: 0o666 }],
    ['unix:///run/what?.sock', { proto: 'unix', path: '/run/what?.sock' }],
    // port ranges (SPEC.md "Port ranges")
    [':20000-20999', { port: 20000, portEnd: 20999 }],
    [
      'udp://blue@10.0.0.1:5000-5000',
      { proto: 'udp', ns: 'blue', host: '10.0.0.1', port: 5000, portEnd: 5000 },
    ],
    ['[::1]:1-10000', { host: '::1', port: 1, portEnd: 10000 }],
  ];
  for (const [text, want] of good) {
    it(`reads ${text}`, () => assert.deepEqual(parseUrl(text), want));
  }

  const bad: [string, RegExp][] = [
    ['', /not valid/],
    ['ftp://:21', /protocol "ftp" is not supported/],
    ['unix://:1', /expected unix:\/\/\/PATH or unix:\/\/@NAME/],
    ['unix://', /expected unix:\/\/\/PATH/],
    ['unix://blue@', /expected unix:\/\/\/PATH/],
    ['unix://@', /an abstract name has 1 to 107 bytes/],
    [`unix://@${'n'.repeat(108)}`, /an abstract name has 1 to 107 bytes/],
    ['unix:///run/', /does not name a socket file/],
    ['unix:///run/..', /does not name a socket file/],
    ['unix:///run/a.sock?mode=999', /not an octal file mode/],
    ['unix:///run/a.sock?owner=me', /"owner" is not an option/],
    ['unix://@name?mode=0600', /an abstract socket has no file, so no mode/],
    [':70000', /0 to 65535/],
    [':-1', /0 to 65535/],
    [':abc', /0 to 65535/],
    ['::1:80', /brackets/],
    ['[::1', /without "\]"/],
    ['[nothex]:1', /not an IPv6 address/],
    ['[::1]x', /not valid/],
    ['@:80', /namespace before "@" is empty/],
    ['bad_host!:80', /not a valid host/],
    [':1-10001', /has 10001 ports, more than 10,000: split it/],
    [':20999-20000', /ends \(20000\) before it starts \(20999\): write it as 20000-20999/],
    [':0-10', /port 0 cannot be in a range/],
    [':10-70000', /0 to 65535/],
    [':10-', /0 to 65535/],
  ];
  for (const [text, msg] of bad) {
    it(`refuses "${text}"`, () => assert.throws(() => parseUrl(text), msg));
  }
});

describe('parsePort and formatUrl', () => {
  it('parses ports and names what they belong to', () => {
    assert.equal(parsePort('8080', 'x'), 8080);
    assert.throws(() => parsePort('1e3', 'thing'), /^UsageError: thing: port "1e3"/);
  });
  it('formats IPv4, IPv6 and namespaces', () => {
    assert.equal(formatUrl('tcp', '127.0.0.1', 80), 'tcp://127.0.0.1:80');
    assert.equal(formatUrl('udp', '::1', 53), 'udp://[::1]:53');
    assert.equal(formatUrl('tcp', '127.0.0.1', 80, 'blue'), 'tcp://blue@127.0.0.1:80');
    assert.equal(formatUnixUrl('/run/a.sock'), 'unix:///run/a.sock');
    assert.equal(formatUnixUrl('@name', 'blue'), 'unix://blue@@name');
  });
});
