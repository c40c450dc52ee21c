/**
 * Overlay addresses and UDP ports for tunnels. Pure functions: the responding daemon picks
 * the pair from the range both sides share (-C), avoiding every address either side uses.
 */
import { WormholeError } from '../common/errors';

function toInt(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function toIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/**
 * The lowest free pair of addresses (even, odd) in `cidr`, counting from the address it is
 * written with and skipping that first pair. Throws OVERLAY_FULL when none is left.
 */
export function pickPair(cidr: string, used: Iterable<string>): [string, string] {
  const [base, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  // From the address the range is written with (100.65.0.0 in 100.65.0.0/14), to its end.
  const network = toInt(base) - (toInt(base) % size);
  const start = toInt(base) - (toInt(base) % 2);
  const taken = new Set(used);
  for (let i = 2; start + i + 1 < network + size - 1; i += 2) {
    const a = toIp(start + i);
    const b = toIp(start + i + 1);
    if (!taken.has(a) && !taken.has(b)) return [a, b];
  }
  throw new WormholeError(
    'OVERLAY_FULL',
    `no free address pair left in ${cidr}: delete a tunnel or give a larger -C`,
  );
}

/** The lowest port of [from, to] not in `used`. */
export function pickPort([from, to]: [number, number], used: Iterable<number>): number {
  const taken = new Set(used);
  for (let p = from; p <= to; p++) if (!taken.has(p)) return p;
  throw new WormholeError('PORTS_FULL', `no free UDP port left in ${from}-${to}: give a larger -P`);
}
