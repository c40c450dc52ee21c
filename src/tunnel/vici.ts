/**
 * A client of strongSwan's VICI, the control socket charon listens on (its plugins.vici):
 * a packet is a 4-byte big-endian length, a type byte, for most types a name (a length byte
 * and the bytes), and a message, a run of elements: sections (named, nested), key-value
 * pairs (a length byte, the key, a 2-byte length, the value) and lists of values. No npm
 * package speaks it, so it is written here; its decoder takes charon's bytes as untrusted.
 */
import * as net from 'node:net';
import { WormholeError } from '../common/errors';

/** A VICI message: keys to values, lists of values, or nested sections. */
export interface ViciMessage {
  [key: string]: string | string[] | ViciMessage;
}

/** Packet types, as strongSwan's libvici numbers them. */
export const PacketType = {
  CMD_REQUEST: 0,
  CMD_RESPONSE: 1,
  CMD_UNKNOWN: 2,
  EVENT_REGISTER: 3,
  EVENT_UNREGISTER: 4,
  EVENT_CONFIRM: 5,
  EVENT_UNKNOWN: 6,
  EVENT: 7,
} as const;

/** Message element types. */
const SECTION_START = 1;
const SECTION_END = 2;
const KEY_VALUE = 3;
const LIST_START = 4;
const LIST_ITEM = 5;
const LIST_END = 6;

/** The largest packet charon sends or takes (libvici's limit): anything longer is malformed. */
export const MAX_PACKET = 512 * 1024;

/** A packet after its length: type, name (for the types that carry one), message. */
export interface ViciPacket {
  type: number;
  name?: string;
  message: ViciMessage;
}

/** The types whose packets carry a name. */
const NAMED: ReadonlySet<number> = new Set([
  PacketType.CMD_REQUEST,
  PacketType.EVENT_REGISTER,
  PacketType.EVENT_UNREGISTER,
  PacketType.EVENT,
]);
/** The types whose packets carry a message. */
const WITH_MESSAGE: ReadonlySet<number> = new Set([
  PacketType.CMD_REQUEST,
  PacketType.CMD_RESPONSE,
  PacketType.EVENT,
]);

function malformed(why: string): WormholeError {
  return new WormholeError('IPSEC_FAILED', `malformed VICI data from charon: ${why}`);
}

/** What this side cannot write (a name or value too long for its length field). */
function unwritable(why: string): WormholeError {
  return new WormholeError('IPSEC_FAILED', `cannot write to charon's VICI: ${why}`);
}

/** A name (key, section or list name, packet name): one length byte, at most 255 bytes. */
function nameBytes(name: string): Buffer {
  const b = Buffer.from(name);
  if (b.length === 0 || b.length > 255)
    throw unwritable(`a name must be 1-255 bytes ("${name.slice(0, 40)}")`);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/** A value: two length bytes, at most 65535 bytes. */
function valueBytes(value: string): Buffer {
  const b = Buffer.from(value);
  if (b.length > 0xffff) throw unwritable('a value longer than 65535 bytes');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/** Encode a message's elements. */
export function encodeMessage(msg: ViciMessage): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(msg)) {
    if (typeof value === 'string') {
      parts.push(Buffer.from([KEY_VALUE]), nameBytes(key), valueBytes(value));
    } else if (Array.isArray(value)) {
      parts.push(Buffer.from([LIST_START]), nameBytes(key));
      for (const item of value) parts.push(Buffer.from([LIST_ITEM]), valueBytes(item));
      parts.push(Buffer.from([LIST_END]));
    } else {
      parts.push(
        Buffer.from([SECTION_START]),
        nameBytes(key),
        encodeMessage(value),
        Buffer.from([SECTION_END]),
      );
    }
  }
  return Buffer.concat(parts);
}

/** Reads a buffer front to back, refusing to read past its end. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  get done(): boolean {
    return this.at >= this.buf.length;
  }
  /** What is not read yet. */
  rest(): Buffer {
    return this.buf.subarray(this.at);
  }
  u8(): number {
    if (this.at + 1 > this.buf.length) throw malformed('truncated');
    return this.buf[this.at++];
  }
  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw malformed('truncated');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  name(): string {
    const n = this.u8();
    if (n === 0) throw malformed('an empty name');
    return this.bytes(n).toString();
  }
  value(): string {
    const len = this.bytes(2).readUInt16BE();
    return this.bytes(len).toString();
  }
}

/** Decode a message's elements; throws VICI_MALFORMED on anything out of place. */
export function decodeMessage(buf: Buffer): ViciMessage {
  const r = new Reader(buf);
  const root: ViciMessage = {};
  const stack: ViciMessage[] = [root];
  let list: string[] | undefined;
  while (!r.done) {
    const type = r.u8();
    const top = stack[stack.length - 1];
    if (list && type !== LIST_ITEM && type !== LIST_END) throw malformed(`element ${type} inside a list`);
    switch (type) {
      case SECTION_START: {
        const section: ViciMessage = {};
        top[r.name()] = section;
        stack.push(section);
        break;
      }
      case SECTION_END:
        if (stack.length === 1) throw malformed('a section end with no section open');
        stack.pop();
        break;
      case KEY_VALUE: {
        const key = r.name();
        top[key] = r.value();
        break;
      }
      case LIST_START:
        list = [];
        top[r.name()] = list;
        break;
      case LIST_ITEM:
        if (!list) throw malformed('a list item outside a list');
        list.push(r.value());
        break;
      case LIST_END:
        if (!list) throw malformed('a list end with no list open');
        list = undefined;
        break;
      default:
        throw malformed(`unknown element type ${type}`);
    }
  }
  if (list) throw malformed('a list left open');
  if (stack.length > 1) throw malformed('a section left open');
  return root;
}

/** Encode a whole packet, its length first. */
export function encodePacket(p: ViciPacket): Buffer {
  const body = Buffer.concat([
    Buffer.from([p.type]),
    NAMED.has(p.type) ? nameBytes(p.name ?? '') : Buffer.alloc(0),
    WITH_MESSAGE.has(p.type) ? encodeMessage(p.message) : Buffer.alloc(0),
  ]);
  if (body.length > MAX_PACKET) throw unwritable(`a packet of ${body.length} bytes`);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** Decode a packet's body (after its length). */
export function decodePacket(body: Buffer): ViciPacket {
  const r = new Reader(body);
  const type = r.u8();
  if (type > PacketType.EVENT) throw malformed(`unknown packet type ${type}`);
  const name = NAMED.has(type) ? r.name() : undefined;
  const rest = r.rest();
  if (!WITH_MESSAGE.has(type) && rest.length > 0) throw malformed(`packet type ${type} with a message`);
  return { type, ...(name !== undefined ? { name } : {}), message: decodeMessage(rest) };
}

/**
 * Split a byte stream into packet bodies: returns the whole ones and what is left over.
 * A length over MAX_PACKET is malformed (the stream cannot be trusted after it).
 */
export function splitPackets(buf: Buffer): { bodies: Buffer[]; rest: Buffer } {
  const bodies: Buffer[] = [];
  let at = 0;
  while (buf.length - at >= 4) {
    const len = buf.readUInt32BE(at);
    if (len === 0 || len > MAX_PACKET) throw malformed(`a packet length of ${len}`);
    if (buf.length - at - 4 < len) break;
    bodies.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return { bodies, rest: buf.subarray(at) };
}

/** One connection to charon's VICI socket: one request at a time, in order. */
export class ViciClient {
  private pending = Buffer.alloc(0);
  private readonly waiting: { resolve: (p: ViciPacket) => void; reject: (e: Error) => void }[] = [];
  private readonly queued: ViciPacket[] = [];
  private failed: Error | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => this.receive(chunk));
    sock.on('error', (err) => this.fail(err));
    sock.on('close', () => this.fail(new WormholeError('IPSEC_FAILED', 'charon closed its VICI socket')));
  }

  /** Connect to the socket at `file`. */
  static connect(file: string): Promise<ViciClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(file);
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.off('error', reject);
        resolve(new ViciClient(sock));
      });
    });
  }

  /** Neither closed nor failed. */
  get alive(): boolean {
    return this.failed === undefined;
  }

  private receive(chunk: Buffer): void {
    try {
      const { bodies, rest } = splitPackets(Buffer.concat([this.pending, chunk]));
      this.pending = rest;
      for (const body of bodies) {
        const p = decodePacket(body);
        const w = this.waiting.shift();
        if (w) w.resolve(p);
        else this.queued.push(p);
      }
    } catch (err) {
      this.fail(err as Error);
      this.sock.destroy();
    }
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  private next(): Promise<ViciPacket> {
    const p = this.queued.shift();
    if (p) return Promise.resolve(p);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private send(p: ViciPacket): void {
    if (this.failed) throw this.failed;
    this.sock.write(encodePacket(p));
  }

  /** Run `fn` after every earlier exchange: VICI answers in order, one request at a time. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => undefined).then(fn);
    this.chain = next;
    return next;
  }

  private async expect(type: number, what: string): Promise<ViciPacket> {
    const p = await this.next();
    if (p.type === PacketType.CMD_UNKNOWN)
      throw new WormholeError('IPSEC_FAILED', `charon knows no command ${what}`);
    if (p.type === PacketType.EVENT_UNKNOWN)
      throw new WormholeError('IPSEC_FAILED', `charon knows no event ${what}`);
    if (p.type !== type) throw malformed(`packet type ${p.type} where ${type} was due (${what})`);
    return p;
  }

  /**
   * Send command `cmd` and return its answer; with `event`, also the events of that name it
   * streams before answering (list-sas streams one list-sa per IKE SA).
   */
  request(
    cmd: string,
    message: ViciMessage = {},
    event?: string,
  ): Promise<{ reply: ViciMessage; events: ViciMessage[] }> {
    return this.serial(async () => {
      if (event) {
        this.send({ type: PacketType.EVENT_REGISTER, name: event, message: {} });
        await this.expect(PacketType.EVENT_CONFIRM, event);
      }
      this.send({ type: PacketType.CMD_REQUEST, name: cmd, message });
      const events: ViciMessage[] = [];
      let p = await this.next();
      while (p.type === PacketType.EVENT && p.name === event) {
        events.push(p.message);
        p = await this.next();
      }
      if (p.type === PacketType.CMD_UNKNOWN)
        throw new WormholeError('IPSEC_FAILED', `charon knows no command ${cmd}`);
      if (p.type !== PacketType.CMD_RESPONSE) throw malformed(`packet type ${p.type} answering ${cmd}`);
      if (event) {
        this.send({ type: PacketType.EVENT_UNREGISTER, name: event, message: {} });
        await this.expect(PacketType.EVENT_CONFIRM, event);
      }
      return { reply: p.message, events };
    });
  }

  /** Send `cmd` and fail unless charon says `success = yes` (its `errmsg` said if not). */
  async command(cmd: string, message: ViciMessage = {}): Promise<ViciMessage> {
    const { reply } = await this.request(cmd, message);
    if (reply.success !== undefined && reply.success !== 'yes') {
      const why = typeof reply.errmsg === 'string' ? reply.errmsg : 'no reason given';
      throw new WormholeError('IPSEC_FAILED', `charon refused ${cmd}: ${why}`);
    }
    return reply;
  }

  close(): void {
    this.sock.destroy();
  }
}
