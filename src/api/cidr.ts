/**
 * `allow CIDR`: the networks a head takes clients from. Parsed once at create (a bad one is
 * one line and nothing made), matched by the JavaScript movers (a client's address string),
 * and packed for the engine, which matches the same entries at accept (native/listen.c).
 */
import * as net from 'node:net';
import { UsageError } from '../common/errors';

/** One network: its family, prefix length and address bytes (4 or 16). */
export interface Cidr {
  family: 4 | 6;
  prefix: number;
  bytes: Buffer;
}

/** An address's bytes (4 for IPv4, 16 for IPv6), or undefined if it is not one. */
function addressBytes(addr: string): { family: 4 | 6; bytes: Buffer } | undefined {
  const family = net.isIP(addr);
  if (family === 4) return { family, bytes: Buffer.from(addr.split('.').map(Number)) };
  if (family !== 6) return undefined;
  // expand `::` and a dotted IPv4 tail into eight 16-bit groups
  let text = addr.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = `${text.slice(0, -v4[1].length)}${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [left, right] = text.includes('::') ? text.split('::') : [text, undefined];
  const l = left ? left.split(':') : [];
  const r = right ? right.split(':') : [];
  const groups = right === undefined ? l : [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return { family, bytes };
}

/** `CIDR` or a bare address (a /32 or /128); a UsageError saying what is wrong otherwise. */
export function parseCidr(word: string): Cidr {
  const wrong = (): never => {
    throw new UsageError(
      `allow "${word}" is not an address or network: e.g. allow 10.0.0.0/8, allow 192.168.1.5, allow fd00::/8`,
    );
  };
  const slash = word.indexOf('/');
  const addr = slash < 0 ? word : word.slice(0, slash);
  const got = addressBytes(addr);
  if (!got) return wrong();
  const max = got.family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : word.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) return wrong();
  return { family: got.family, prefix: Number(prefixText), bytes: got.bytes };
}

/** Do the first `prefix` bits of two byte strings agree? */
function samePrefix(a: Buffer, b: Buffer, prefix: number): boolean {
  const whole = prefix >> 3;
  if (a.subarray(0, whole).compare(b.subarray(0, whole)) !== 0) return false;
  const rest = prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[whole] & mask) === (b[whole] & mask);
}

/**
 * A matcher for a client's address string: is it in one of the networks? An IPv4 client of
 * a dual-stack head comes as `::ffff:a.b.c.d` and is matched as the IPv4 address it is.
 */
export function cidrMatcher(cidrs: readonly Cidr[]): (addr: string) => boolean {
  return (addr) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
    const got = addressBytes(mapped ? mapped[1] : addr);
    if (!got) return false;
    return cidrs.some((c) => c.family === got.family && samePrefix(c.bytes, got.bytes, c.prefix));
  };
}

/**
 * The networks as the engine takes them (groupCreate's allow): 18 bytes each, the family
 * (4 or 6), the prefix length, then 16 address bytes (an IPv4 address in the first 4).
 */
export function packCidrs(cidrs: readonly Cidr[]): Buffer {
  const out = Buffer.alloc(cidrs.length * 18);
  cidrs.forEach((c, i) => {
    out[i * 18] = c.family;
    out[i * 18 + 1] = c.prefix;
    c.bytes.copy(out, i * 18 + 2);
  });
  return out;
}
