import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  MAX_PACKET,
  PacketType,
  ViciClient,
  type ViciMessage,
  decodeMessage,
  decodePacket,
  encodeMessage,
  encodePacket,
  splitPackets,
} from '../../../src/tunnel/vici';

/** A message of every kind of element: key-values, a list, nested sections, an empty value. */
const sample: ViciMessage = {
  version: '2',
  empty: '',
  local_addrs: ['10.0.0.1', '10.0.0.3'],
  conn: { local: { auth: 'psk', id: '100.65.0.2' }, children: { c: { remote_ts: ['100.65.0.3/32'] } } },
};

describe('VICI encoding', () => {
  it('writes the bytes libvici reads: type, name length, name, value length, value', () => {
    assert.deepEqual(encodeMessage({ a: 'xy' }), Buffer.from([3, 1, 0x61, 0, 2, 0x78, 0x79]));
    assert.deepEqual(
      encodeMessage({ s: { l: ['z'] } }),
      Buffer.from([1, 1, 0x73, 4, 1, 0x6c, 5, 0, 1, 0x7a, 6, 2]),
    );
    // a command: length (4 bytes), CMD_REQUEST, its name, then the message
    assert.deepEqual(
      encodePacket({ type: PacketType.CMD_REQUEST, name: 'version', message: {} }),
      Buffer.concat([Buffer.from([0, 0, 0, 9, 0, 7]), Buffer.from('version')]),
    );
  });

  it('reads back what it writes, sections, lists and empty values included', () => {
    assert.deepEqual(decodeMessage(encodeMessage(sample)), sample);
    const packet = encodePacket({ type: PacketType.EVENT, name: 'list-sa', message: sample });
    const { bodies, rest } = splitPackets(Buffer.concat([packet, packet.subarray(0, 5)]));
    assert.equal(bodies.length, 1, 'one whole packet');
    assert.equal(rest.length, 5, 'the start of the next one kept');
    assert.deepEqual(decodePacket(bodies[0]), { type: PacketType.EVENT, name: 'list-sa', message: sample });
    assert.deepEqual(decodePacket(Buffer.from([PacketType.EVENT_CONFIRM])), {
      type: PacketType.EVENT_CONFIRM,
      message: {},
    });
  });

  it('refuses what it cannot write: names of 0 or 256 bytes, values over 65535 bytes', () => {
    assert.throws(() => encodeMessage({ '': 'x' }), { code: 'IPSEC_FAILED' });
    assert.throws(() => encodeMessage({ ['k'.repeat(256)]: 'x' }), /1-255 bytes/);
    assert.throws(() => encodeMessage({ k: 'v'.repeat(65536) }), /longer than 65535/);
  });

  it('refuses malformed input with one line, never reading past the end', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['a value cut short', Buffer.from([3, 1, 0x61, 0, 5, 0x78]), /truncated/],
      ['a name cut short', Buffer.from([1, 9, 0x61]), /truncated/],
      ['an empty name', Buffer.from([3, 0, 0, 0]), /empty name/],
      ['an unknown element', Buffer.from([9]), /unknown element type 9/],
      ['a section end at the top', Buffer.from([2]), /section end with no section open/],
      ['a section left open', Buffer.from([1, 1, 0x73]), /section left open/],
      ['a list item outside a list', Buffer.from([5, 0, 0]), /list item outside a list/],
      ['a list left open', Buffer.from([4, 1, 0x6c]), /list left open/],
      ['a key inside a list', Buffer.from([4, 1, 0x6c, 3, 1, 0x61, 0, 0]), /inside a list/],
      ['a list end with no list', Buffer.from([6]), /list end with no list open/],
    ];
    for (const [what, bytes, why] of cases) {
      assert.throws(() => decodeMessage(bytes), { code: 'IPSEC_FAILED', message: why }, what);
    }
    assert.throws(() => decodePacket(Buffer.from([8])), /unknown packet type 8/);
    assert.throws(() => decodePacket(Buffer.from([PacketType.EVENT_CONFIRM, 3])), /with a message/);
    assert.throws(() => decodePacket(Buffer.from([PacketType.CMD_REQUEST])), /truncated/);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(MAX_PACKET + 1);
    assert.throws(() => splitPackets(huge), /a packet length of 524289/);
    assert.throws(() => splitPackets(Buffer.alloc(4)), /a packet length of 0/);
  });
});

/** A fake charon on a unix socket: answers each packet with what `answer` gives. */
async function fakeCharon(
  answer: (p: ReturnType<typeof decodePacket>) => Buffer[],
): Promise<{ file: string; close: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whvici-'));
  const file = path.join(dir, 'charon.vici');
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      const { bodies, rest } = splitPackets(Buffer.concat([buf, d]));
      buf = rest;
      for (const b of bodies) for (const out of answer(decodePacket(b))) sock.write(out);
    });
  });
  await new Promise<void>((r) => server.listen(file, r));
  return {
    file,
    close: () => {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('VICI client', () => {
  it('sends a command, collects the events it streams, and says what charon refused', async () => {
    const charon = await fakeCharon((p) => {
      if (p.type === PacketType.EVENT_REGISTER || p.type === PacketType.EVENT_UNREGISTER)
        return [encodePacket({ type: PacketType.EVENT_CONFIRM, message: {} })];
      if (p.name === 'list-sas')
        return [
          encodePacket({
            type: PacketType.EVENT,
            name: 'list-sa',
            message: { one: { state: 'ESTABLISHED' } },
          }),
          encodePacket({
            type: PacketType.EVENT,
            name: 'list-sa',
            message: { two: { state: 'CONNECTING' } },
          }),
          encodePacket({ type: PacketType.CMD_RESPONSE, message: {} }),
        ];
      if (p.name === 'load-conn')
        return [encodePacket({ type: PacketType.CMD_RESPONSE, message: { success: 'no', errmsg: 'bad' } })];
      return [encodePacket({ type: PacketType.CMD_UNKNOWN, message: {} })];
    });
    const c = await ViciClient.connect(charon.file);
    try {
      const { events } = await c.request('list-sas', {}, 'list-sa');
      assert.deepEqual(events, [{ one: { state: 'ESTABLISHED' } }, { two: { state: 'CONNECTING' } }]);
      await assert.rejects(c.command('load-conn', {}), {
        code: 'IPSEC_FAILED',
        message: 'charon refused load-conn: bad',
      });
      await assert.rejects(c.command('nonsense'), /charon knows no command nonsense/);
      assert.ok(c.alive);
    } finally {
      c.close();
      charon.close();
    }
  });

  it('fails every request once charon sends garbage, instead of waiting', async () => {
    const charon = await fakeCharon(() => [Buffer.from([0, 0, 0, 2, 9, 9])]);
    const c = await ViciClient.connect(charon.file);
    try {
      await assert.rejects(c.command('version'), /unknown packet type 9/);
      assert.equal(c.alive, false);
      await assert.rejects(c.command('version'), /unknown packet type 9/);
    } finally {
      c.close();
      charon.close();
    }
  });
});
