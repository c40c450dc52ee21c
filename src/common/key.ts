/**
 * The pre-shared key: every TCP connection between a CLI and a daemon, or between two
 * daemons, is TLS 1.3 authenticated with it. There is no built-in key.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WormholeError, errorMessage } from './errors';

/** Where the key lives unless -K says otherwise. */
export const DEFAULT_KEY_FILE = '/etc/wormhole/key.secret';

/** TLS 1.3 suites that work with a PSK in Node 20 (the SHA-384 one does not). */
export const PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';

/**
 * The identity a CLI or daemon of before `--keys` presents, whatever its key: a daemon takes
 * it as `-K`'s key (admin), so that those keep working.
 */
export const PSK_IDENTITY = 'wormhole';

/**
 * The identity a client presents with a key: a hash of the key, in hex, so that the daemon
 * finds which of its keys connected (`--keys`) with no name in clear and none typed. It tells
 * nothing of the key (a one-way hash, under its own label); the handshake still proves the key.
 */
export function pskIdentity(psk: Buffer): string {
  return crypto.createHash('sha256').update('wormhole-identity-v1\0').update(psk).digest('hex');
}

/** Read a key file: trailing whitespace is not part of the key; others must not read it. */
export function readKey(file: string): Buffer {
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(file);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      // Only the default key file is made by the daemon: another path is the user's to write.
      throw new WormholeError(
        'KEY_MISSING',
        file === DEFAULT_KEY_FILE
          ? `key file ${file} does not exist: start wormholed once to create it, or give -K FILE`
          : `key file ${file} does not exist: write a key of 16 or more random characters into it (mode 600), or leave -K out to use ${DEFAULT_KEY_FILE}`,
      );
    }
    if (code === 'EACCES') {
      throw new WormholeError('KEY_UNREADABLE', `cannot read key file ${file}: run as root, or give -K FILE`);
    }
    if (code === 'EISDIR') {
      throw new WormholeError(
        'KEY_UNREADABLE',
        `key file ${file} is a directory: give -K the key file itself`,
      );
    }
    throw new WormholeError(
      'KEY_UNREADABLE',
      `cannot read key file ${file} (${code ?? errorMessage(err)}): give -K a readable key file`,
    );
  }
  if ((st.mode & 0o077) !== 0) {
    throw new WormholeError('KEY_EXPOSED', `key file ${file} can be read by others: chmod 600 ${file}`);
  }
  const key = text.replace(/\s+$/, '');
  if (key.length < 16) {
    throw new WormholeError(
      'KEY_WEAK',
      `key in ${file} is shorter than 16 characters: write a longer random key`,
    );
  }
  // TLS wants a PSK of a fixed, hash-sized length: derive it from the text.
  return crypto.createHash('sha256').update(`wormhole-psk-v1\0${key}`).digest();
}

/**
 * Make a new key file (32 random letters and digits, mode 0600, its directory 0700) if none
 * exists. Returns true when it made one.
 */
export function ensureKeyFile(file: string): boolean {
  if (fs.existsSync(file)) return false;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  let key = '';
  while (key.length < 32) {
    for (const b of crypto.randomBytes(64)) {
      if (b < 248 && key.length < 32) key += alphabet[b % 62];
    }
  }
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
  return true;
}
