/**
 * The web view's token: an HMAC of a key's PSK under a fixed label. A browser holds the
 * token, never the key: the token opens the read-only page and nothing else (the API wants
 * the key itself, in a TLS handshake), and the key cannot be worked back from it. Each key
 * the daemon knows has its own token, so a read-only key's holder can see the page too.
 */
import * as crypto from 'node:crypto';

/** The label the HMAC is taken under: a token is good for the web view only. */
const LABEL = 'wormhole-ui-token-v1';

/** The token of the key whose PSK this is (64 hex digits). */
export function uiToken(psk: Buffer): string {
  return crypto.createHmac('sha256', psk).update(LABEL).digest('hex');
}

/** Does `given` equal one of `tokens` (compared in constant time)? */
export function tokenMatches(given: string, tokens: readonly string[]): boolean {
  if (!/^[0-9a-f]{64}$/.test(given)) return false;
  const g = Buffer.from(given, 'hex');
  let found = false;
  // every token compared, whether or not one matched already: no timing tells which
  for (const t of tokens) if (crypto.timingSafeEqual(g, Buffer.from(t, 'hex'))) found = true;
  return found;
}

/** A cookie header's value of `name` (undefined: none). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
