import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ifaceName } from '../../../src/tunnel';
import { ipsecCommands, parsePolicies, reqidFor, spiFor } from '../../../src/tunnel/ipsec';
import { pickPair, pickPort } from '../../../src/tunnel/overlay';
import { offloadShortfall } from '../../../src/tunnel/wireguard';
import { charonConf } from '../../../src/tunnel/charon';
import { connection, initiates, installedChildren, tunnelPsk } from '../../../src/tunnel/libipsec';
import type { ViciMessage } from '../../../src/tunnel/vici';

describe('overlay allocation', () => {
  it('picks pairs from the address the range is written with, skipping used ones', () => {
    assert.deepEqual(pickPair('100.65.0.0/14', []), ['100.65.0.2', '100.65.0.3']);
    assert.deepEqual(pickPair('100.65.0.0/14', ['100.65.0.3']), ['100.65.0.4', '100.65.0.5']);
    assert.deepEqual(pickPair('100.65.0.0/14', ['100.65.0.2', '100.65.0.4']), ['100.65.0.6', '100.65.0.7']);
    assert.deepEqual(pickPair('10.9.0.0/24', ['10.9.0.2', '10.9.0.3']), ['10.9.0.4', '10.9.0.5']);
  });
  it('says when the range is full', () => {
    assert.throws(() => pickPair('10.9.0.0/30', []), { code: 'OVERLAY_FULL' });
    const used = Array.from({ length: 252 }, (_, i) => `10.9.0.${i + 2}`);
    assert.throws(() => pickPair('10.9.0.0/24', used), /no free address pair left in 10.9.0.0\/24/);
  });
  it('picks ports', () => {
    assert.equal(pickPort([4500, 4599], []), 4500);
    assert.equal(pickPort([4500, 4599], [4500, 4501]), 4502);
    assert.throws(() => pickPort([4500, 4500], [4500]), { code: 'PORTS_FULL' });
  });
  it('names interfaces the same for the same two hosts, differently per direction', () => {
    assert.match(ifaceName('10.0.0.1', '10.0.0.2'), /^wh[0-9a-f]{10}$/);
    assert.equal(ifaceName('10.0.0.1', '10.0.0.2'), ifaceName('10.0.0.1', '10.0.0.2'));
    assert.notEqual(ifaceName('10.0.0.1', '10.0.0.2'), ifaceName('10.0.0.2', '10.0.0.1'));
  });
});

/** One side of a tunnel, as both IPsec drivers are given it. */
const side = {
  iface: 'wh0a0b0c0d0e',
  localIp: '100.65.0.2',
  remoteIp: '100.65.0.3',
  localPort: 4500,
  peerAddress: '10.77.1.2',
  peerPort: 4501,
  underlay: '10.77.1.1',
  privateKey: Buffer.alloc(20, 0xab).toString('base64'),
  peerPublicKey: '',
  udp: false,
};

describe('IPsec commands', () => {
  it('builds ESP tunnel-mode states and policies, with both sides agreeing on SPIs', () => {
    const cmds = ipsecCommands(side).map((c) => c.join(' '));
    const key = `0x${'ab'.repeat(20)}`;
    const reqid = reqidFor(side.iface);
    assert.equal(reqid, String(0x0a0b0c));
    assert.deepEqual(cmds, [
      'link add wh0a0b0c0d0e type dummy',
      'addr add 100.65.0.2/32 dev wh0a0b0c0d0e',
      'link set wh0a0b0c0d0e up',
      `xfrm state add src 10.77.1.1 dst 10.77.1.2 proto esp spi ${spiFor('100.65.0.2')} reqid ${reqid} mode tunnel aead rfc4106(gcm(aes)) ${key} 128`,
      `xfrm state add src 10.77.1.2 dst 10.77.1.1 proto esp spi ${spiFor('100.65.0.3')} reqid ${reqid} mode tunnel aead rfc4106(gcm(aes)) ${key} 128`,
      `xfrm policy add src 100.65.0.2/32 dst 100.65.0.3/32 dir out tmpl src 10.77.1.1 dst 10.77.1.2 proto esp reqid ${reqid} mode tunnel`,
      `xfrm policy add src 100.65.0.3/32 dst 100.65.0.2/32 dir in tmpl src 10.77.1.2 dst 10.77.1.1 proto esp reqid ${reqid} mode tunnel`,
      `xfrm policy add src 100.65.0.3/32 dst 100.65.0.2/32 dir fwd tmpl src 10.77.1.2 dst 10.77.1.1 proto esp reqid ${reqid} mode tunnel`,
      'route add 100.65.0.3/32 dev wh0a0b0c0d0e src 100.65.0.2',
    ]);
    assert.notEqual(spiFor('100.65.0.2'), spiFor('100.65.0.3'));
  });
  it('carries ESP in UDP for --udp', () => {
    const cmds = ipsecCommands({ ...side, udp: true }).map((c) => c.join(' '));
    assert.match(cmds[3], / encap espinudp 4500 4501 0\.0\.0\.0$/);
    assert.match(cmds[4], / encap espinudp 4501 4500 0\.0\.0\.0$/);
  });
  it('reads policies back from ip xfrm policy', () => {
    const text = [
      'src 100.65.0.3/32 dst 100.65.0.2/32 ',
      '\tdir fwd priority 0 ptype main ',
      '\ttmpl src 10.77.1.2 dst 10.77.1.1',
      '\t\tproto esp reqid 658188 mode tunnel',
      'src 100.65.0.2/32 dst 100.65.0.3/32 ',
      '\tdir out priority 0 ptype main ',
      '\ttmpl src 10.77.1.1 dst 10.77.1.2',
      '\t\tproto esp reqid 658188 mode tunnel',
      'src ::/0 dst ::/0 ',
      '\tsocket out priority 0 ptype main ',
    ].join('\n');
    assert.deepEqual(parsePolicies(text), [
      { src: '100.65.0.3', dst: '100.65.0.2', dir: 'fwd', reqid: '658188' },
      { src: '100.65.0.2', dst: '100.65.0.3', dir: 'out', reqid: '658188' },
      { src: '::/0', dst: '::/0', dir: '' },
    ]);
  });
});

describe('wireguard-go offloads', () => {
  it('says what an old wireguard-go lacks, and nothing of one with offloads', () => {
    assert.match(
      offloadShortfall('wireguard-go v0.0.20220316')!,
      /0\.0\.20220316 has no TUN or UDP offloads/,
    );
    assert.equal(offloadShortfall('wireguard-go v0.0.20230223'), undefined);
    assert.equal(offloadShortfall('wireguard-go v0.0.20231211'), undefined);
    assert.equal(offloadShortfall('wireguard-go v0.1.2'), undefined, 'numbers, not letters: 0.1 > 0.0');
    assert.equal(offloadShortfall('wireguard-go v0.0.20230223', true), undefined);
  });
  it("tells bookworm-backports' (UDP offloads) from 0.0.20230223 by the Debian package's version", () => {
    const same = 'wireguard-go v0.0.20230223'; // (what both say of themselves)
    assert.equal(offloadShortfall(same, true, '0.0.20231211-1~bpo12+1'), undefined);
    assert.match(offloadShortfall(same, true, '0.0.20230223-1')!, /0\.0\.20230223-1\) has no UDP offloads/);
    assert.match(
      offloadShortfall('wireguard-go v0.0.20220316', undefined, '0.0.20220316-1')!,
      /no TUN or UDP/,
    );
    assert.equal(
      offloadShortfall(same, undefined, 'not a version'),
      undefined,
      'nothing known, nothing said',
    );
  });
  it('believes the TUN over the version: no vnet header is no offloads', () => {
    assert.match(offloadShortfall('wireguard-go v0.0.20230223', false)!, /without offloads/);
    assert.match(offloadShortfall('something else', false)!, /version unknown/);
    assert.equal(offloadShortfall('something else'), undefined, 'nothing known, nothing said');
  });
});

describe('userspace IPsec (charon)', () => {
  it("selects only the overlay addresses, never the hosts' own, over IKEv2 with AES-GCM", () => {
    const conn = connection(side)[side.iface] as ViciMessage;
    assert.deepEqual([conn.local_addrs, conn.remote_addrs], [['10.77.1.1'], ['10.77.1.2']]);
    const child = (conn.children as ViciMessage)[side.iface] as ViciMessage;
    assert.deepEqual([child.local_ts, child.remote_ts], [['100.65.0.2/32'], ['100.65.0.3/32']]);
    assert.equal(conn.version, '2');
    assert.match(String(conn.proposals), /^aes256gcm16-/);
    assert.match(String(child.esp_proposals), /^aes256gcm16-/);
    assert.equal(conn.encap, 'yes', 'ESP in UDP: userspace ESP has no raw socket');
  });

  it('has the side with the lower overlay address initiate, the other wait', () => {
    assert.equal(initiates(side), true);
    assert.equal(initiates({ localIp: '100.65.0.3', remoteIp: '100.65.0.2' }), false);
    assert.equal(initiates({ localIp: '100.65.0.10', remoteIp: '100.65.0.9' }), false, 'by number, not text');
  });

  it('derives each PSK from the daemon key and the salt: both sides the same, another key another', () => {
    const key = Buffer.from('k'.repeat(32));
    assert.equal(tunnelPsk(key, 'salt'), tunnelPsk(Buffer.from('k'.repeat(32)), 'salt'));
    assert.notEqual(tunnelPsk(key, 'salt'), tunnelPsk(key, 'other'));
    assert.notEqual(tunnelPsk(key, 'salt'), tunnelPsk(Buffer.from('j'.repeat(32)), 'salt'));
  });

  it('finds the tunnels whose CHILD_SA is installed, with their bytes', () => {
    const found = installedChildren([
      {
        wh0a0b0c0d0e: {
          'remote-host': '10.77.1.2',
          'remote-port': '4500',
          'child-sas': {
            'wh0a0b0c0d0e-1': {
              name: 'wh0a0b0c0d0e',
              state: 'INSTALLED',
              'remote-ts': ['100.65.0.3/32'],
              'bytes-in': '1200',
              'bytes-out': '3400',
            },
          },
        },
      },
      { wh0a0b0c0d0f: { 'child-sas': { x: { name: 'wh0a0b0c0d0f', state: 'REKEYING' } } } },
      { other: { 'child-sas': { y: { name: 'not-ours', state: 'INSTALLED' } } } },
    ]);
    assert.deepEqual(
      [...found],
      [
        [
          'wh0a0b0c0d0e',
          { remoteIp: '100.65.0.3', peer: '10.77.1.2', port: 4500, rxBytes: 1200, txBytes: 3400 },
        ],
      ],
    );
  });

  it('writes a charon config that loads kernel-libipsec before kernel-netlink, and its sockets', () => {
    const conf = charonConf('/var/lib/wormhole/charon');
    const load = /load = (.*)/.exec(conf)?.[1].split(' ') ?? [];
    assert.ok(
      load.indexOf('kernel-libipsec') >= 0 &&
        load.indexOf('kernel-libipsec') < load.indexOf('kernel-netlink'),
    );
    assert.ok(load.includes('socket-default') && load.includes('vici') && load.includes('gcm'));
    assert.match(conf, /socket = unix:\/\/\/var\/lib\/wormhole\/charon\/charon\.vici/);
  });
});
