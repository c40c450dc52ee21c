/**
 * The keys a daemon knows: `-K`'s (named `admin`, every right) and those of `--keys FILE`,
 * one a line as in sshd's authorized_keys (sshd(8), AUTHORIZED_KEYS FILE FORMAT):
 *
 *     # NAME  KEYFILE                OPTIONS (comma-separated, no spaces outside quotes)
 *     ci      /etc/wormhole/ci.key   permit-listen=127.0.0.1:8000-8999,permit-image="local/*"
 *     dash    keys/dash.key          read-only
 *
 * A KEYFILE is read as `-K`'s is (src/common/key.ts: mode 600, 16 characters or more); a
 * relative one is under the keys file's directory. A connection names its key by the key's
 * identity (a hash, src/common/key.ts); the ring looks it up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WormholeError } from '../common/errors';
import { PSK_IDENTITY, pskIdentity, readKey } from '../common/key';
import { ALL_RIGHTS, type KeyRights, type Rights, parseAddrRule } from './rights';

/** A key: its name, its rights, the PSK it authenticates with and the identity it presents. */
export interface Key extends KeyRights {
  psk: Buffer;
  identity: string;
}

/** `-K`'s key. */
export function adminKey(psk: Buffer): Key {
  return { name: 'admin', rights: ALL_RIGHTS, psk, identity: pskIdentity(psk) };
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const OPTIONS = 'read-only, peer, permit-listen=ADDR, permit-open=ADDR, permit-image=GLOB';
const KNOWN = ['read-only', 'peer', 'permit-listen', 'permit-open', 'permit-image'];

/**
 * One line's words: white space separates them outside double quotes; `\"` is a quote inside
 * them; a word that starts with `#` starts a comment. Quotes are kept (the options split on
 * commas outside them); `unquote` takes them off.
 */
function words(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length || line[i] === '#') break;
    let word = '';
    let quoted = false;
    for (; i < line.length && (quoted || !/\s/.test(line[i])); i++) {
      if (line[i] === '\\' && quoted && line[i + 1] === '"') word += line[i++];
      else if (line[i] === '"') quoted = !quoted;
      word += line[i];
    }
    if (quoted) throw new Error('a quote is not closed');
    out.push(word);
  }
  return out;
}

/** Split on commas outside quotes. */
function splitOptions(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted && text[i + 1] === '"') cur += c + text[++i];
    else if (c === ',' && !quoted) [out[out.length], cur] = [cur, ''];
    else {
      if (c === '"') quoted = !quoted;
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

function unquote(text: string): string {
  return text.replace(/\\"|"/g, (m) => (m === '"' ? '' : '"'));
}

/**
 * The options word: the rights it gives. No option of a kind leaves that kind unrestricted;
 * `peer` and `read-only` are given only by name.
 */
export function parseOptions(text: string | undefined): Rights {
  const r: Rights = { readOnly: false, peer: false, listen: null, open: null, image: null };
  if (text === undefined) return r;
  for (const option of splitOptions(text)) {
    const eq = option.indexOf('=');
    const name = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? undefined : unquote(option.slice(eq + 1));
    if (!KNOWN.includes(name)) throw new Error(`unknown option "${name}" (options: ${OPTIONS})`);
    const flag = name === 'read-only' || name === 'peer';
    if (flag !== (value === undefined))
      throw new Error(flag ? `${name} takes no value` : `${name} needs =VALUE`);
    if (value === '') throw new Error(`${name}= is empty`);
    if (name === 'read-only') r.readOnly = true;
    else if (name === 'peer') r.peer = true;
    else if (name === 'permit-listen') (r.listen ??= []).push(parseAddrRule(value!));
    else if (name === 'permit-open') (r.open ??= []).push(parseAddrRule(value!));
    else (r.image ??= []).push(value!);
  }
  return r;
}

/** A KEYFILE read as -K's is; its failure said without -K's hints. */
function readKeyFile(file: string): Buffer {
  try {
    return readKey(file);
  } catch (err) {
    const code = err instanceof WormholeError ? err.code : '';
    if (code === 'KEY_MISSING') throw new Error(`key file ${file} does not exist`);
    if (code === 'KEY_EXPOSED') throw new Error(`key file ${file} can be read by others: chmod 600 ${file}`);
    if (code === 'KEY_WEAK') throw new Error(`the key in ${file} is shorter than 16 characters`);
    throw new Error(`cannot read key file ${file}`);
  }
}

/** One line's key (undefined: a blank line or a comment). */
function parseLine(line: string, dir: string): Key | undefined {
  const w = words(line);
  if (w.length === 0) return undefined;
  if (w.length === 1) throw new Error('expected NAME KEYFILE [OPTIONS]');
  if (w.length > 3) throw new Error(`"${w[3]}" after the options: options are one word, comma-separated`);
  const name = unquote(w[0]);
  if (!NAME.test(name))
    throw new Error(`"${name}" is not a key name (letters, digits, "-", "_", "."; at most 64)`);
  if (name === 'admin') throw new Error("the name admin is -K's key: give this key another name");
  const psk = readKeyFile(path.resolve(dir, unquote(w[1])));
  return { name, rights: parseOptions(w[2]), psk, identity: pskIdentity(psk) };
}

/**
 * Read a keys file: every key in it, or a KEYS_INVALID error naming the file, the line and
 * what is wrong (nothing is half-read). `admin`: -K's key, which no line may repeat.
 */
export function loadKeysFile(file: string, admin: Buffer): Key[] {
  const fail = (what: string): never => {
    throw new WormholeError('KEYS_INVALID', `keys file ${file}: ${what}`);
  };
  let text = '';
  try {
    // whoever may write it may give themselves any right: like the key files, root's alone
    if ((fs.statSync(file).mode & 0o022) !== 0) fail(`others may change it: chmod go-w ${file}`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof WormholeError) throw err;
    fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const keys: Key[] = [];
  const adminId = pskIdentity(admin);
  for (const [i, line] of text.split('\n').entries()) {
    let key: Key | undefined;
    try {
      key = parseLine(line, path.dirname(file));
    } catch (err) {
      fail(`line ${i + 1}: ${(err as Error).message}`);
    }
    if (!key) continue;
    if (key.identity === adminId)
      fail(`line ${i + 1}: ${key.name}'s key is -K's (admin's): give it a key of its own`);
    const twin = keys.find((k) => k.name === key.name || k.identity === key.identity);
    if (twin)
      fail(
        `line ${i + 1}: ${twin.name === key.name ? `the name ${key.name}` : `${key.name}'s key`} is given twice (also ${twin.name})`,
      );
    keys.push(key);
  }
  return keys;
}

/** The keys a daemon knows now: changed as a whole at SIGHUP, looked up at each handshake. */
export class KeyRing {
  private admin: Key;
  private byIdentity = new Map<string, Key>();

  constructor(adminPsk: Buffer, others: Key[] = []) {
    this.admin = adminKey(adminPsk);
    this.setOthers(others);
  }

  /** -K's key again (SIGHUP: a rotated key file). */
  setKey(psk: Buffer): void {
    this.admin = adminKey(psk);
  }

  /** The --keys file's keys again (SIGHUP); connections already open keep theirs. */
  setOthers(keys: Key[]): void {
    this.byIdentity = new Map(keys.map((k) => [k.identity, k]));
  }

  /** -K's key, which a local unix connection holds. */
  get adminKey(): Key {
    return this.admin;
  }

  /**
   * The key a client says it holds (the handshake then proves it): its identity, or the one a
   * client of before --keys sends, taken as -K's.
   */
  find(identity: string): Key | undefined {
    if (identity === this.admin.identity || identity === PSK_IDENTITY) return this.admin;
    return this.byIdentity.get(identity);
  }

  /** Every key: -K's first. */
  all(): Key[] {
    return [this.admin, ...this.byIdentity.values()];
  }

  /** How many keys besides -K's. */
  get size(): number {
    return this.byIdentity.size;
  }
}
