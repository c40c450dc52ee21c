/**
 * The create grammar of SPEC.md: `wormhole create ACTION...`, read left to right.
 *
 * Two stages, both pure: `tokenize` turns command-line words into actions (this is what goes
 * on the wire), `parsePlan` turns actions into a tree of plans, one per segment. The CLI and
 * the daemon both run them, so a malformed create is refused before any side effect.
 */
import { UsageError } from '../common/errors';
import { parseCidr } from './cidr';
import { parseDuration } from './duration';
import { splitPlan } from './splitwords';
import { parseUrl, portCount, type UrlParts } from './url';

export { parseDuration };

/** Every action word of the grammar. */
export const VERBS = [
  'id',
  'url',
  'docker-ns',
  'docker-run',
  'tail',
  'trigger',
  'child',
  'chain',
  'remote',
  'tunnel',
  'udptunnel',
  'also',
  'docker-label',
  'balance',
  'health',
  'idle',
  'idle-action',
  'proxy-protocol',
  'allow',
  'wake-on-data',
  'transparent',
  'ready',
  'dial-timeout',
] as const;
export type Verb = (typeof VERBS)[number];

/** One action as sent on the wire. */
export interface Action {
  verb: Verb;
  /** The argument words (none, one, or several for docker-run). */
  args: string[];
}

const NO_ARG: readonly Verb[] = ['tail', 'trigger', 'child', 'chain', 'also', 'wake-on-data', 'transparent'];
const ONE_ARG: readonly Verb[] = [
  'id',
  'url',
  'remote',
  'tunnel',
  'udptunnel',
  'docker-label',
  'balance',
  'health',
  'idle',
  'idle-action',
  'proxy-protocol',
  'allow',
  'dial-timeout',
];

/** How a segment with several tails picks one (see src/proxy/balance.ts). */
export const BALANCE_POLICIES = ['round-robin', 'least-conn', 'source'] as const;
export type BalancePolicy = (typeof BALANCE_POLICIES)[number];

/** A docker label selector, KEY=VALUE, as Docker's filters take it. */
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}=[A-Za-z0-9._/:@+-]{0,255}$/;

/** Is this word an action word? */
export function isVerb(word: string): word is Verb {
  return (VERBS as readonly string[]).includes(word);
}

/** Segment ids: letters, digits, `-`, `_`, `.`, up to 64, starting with a letter or digit. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Container references: a full or short id, or a name. */
export const CONTAINER_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Peer host: `host[:port]`, `[v6][:port]`. */
const PEER_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})(:\d{1,5})?$/;

/**
 * Command-line words -> actions. `docker-ns` takes the next word unless it is an action word
 * or there is none (then it means the host's own namespace). `docker-run` takes every word up
 * to the next action word (quote them as one word to be safe).
 */
export function tokenize(words: readonly string[]): Action[] {
  if (words.length === 0)
    throw new UsageError('create needs at least one action, e.g. create url :8080 tail url :80');
  const actions: Action[] = [];
  let i = 0;
  while (i < words.length) {
    const word = words[i++];
    if (!isVerb(word)) {
      throw new UsageError(`"${word}" is not an action: expected one of ${VERBS.join(', ')}`);
    }
    if (NO_ARG.includes(word)) {
      actions.push({ verb: word, args: [] });
    } else if (ONE_ARG.includes(word)) {
      if (i >= words.length || isVerb(words[i])) throw new UsageError(`${word} needs an argument`);
      actions.push({ verb: word, args: [words[i++]] });
    } else if (word === 'ready') {
      // `ready exec` takes the command as one more word ("CMD ARGS", quoted); `health` is also
      // an action word: after `ready` it is the mode
      if (i >= words.length || (isVerb(words[i]) && words[i] !== 'health'))
        throw new UsageError(`ready needs a mode: ${READY_MODES.join(', ')} (e.g. ready banner)`);
      const mode = words[i++];
      if (mode !== 'exec') actions.push({ verb: word, args: [mode] });
      else if (i >= words.length || isVerb(words[i])) throw new UsageError(READY_EXEC_NEEDS);
      else actions.push({ verb: word, args: [mode, words[i++]] });
    } else if (word === 'docker-ns') {
      if (i < words.length && !isVerb(words[i])) actions.push({ verb: word, args: [words[i++]] });
      else actions.push({ verb: word, args: [] });
    } else {
      const args: string[] = [];
      while (i < words.length && !isVerb(words[i])) args.push(words[i++]);
      if (args.length === 0)
        throw new UsageError('docker-run needs an image, e.g. docker-run wormhole/mysql');
      actions.push({ verb: word, args });
    }
  }
  return actions;
}

/** Which end an action configures. */
export type Side = 'head' | 'tail';

/** One step of a plan. */
export type Step =
  | { op: 'url'; side: Side; url: UrlParts }
  | { op: 'docker-ns'; side: Side; container: string | null }
  | { op: 'docker-run'; side: Side; args: string[] }
  | { op: 'proxy-protocol'; side: 'tail'; version: 1 | 2 }
  /** The tail sees the client's own address and port (src/segment/transparent.ts). */
  | { op: 'transparent' }
  /** Another tail, from a copy of the previous one. */
  | { op: 'also' }
  /** Every running container with this label is a tail. */
  | { op: 'docker-label'; label: string }
  | { op: 'child' | 'chain'; plan: Plan }
  | { op: 'remote' | 'tunnel' | 'udptunnel'; host: string; plan: Plan; actions: Action[] };

/** What to do for one segment: steps at create time, and steps at the first connection. */
export interface Plan {
  id?: string;
  init: Step[];
  /** Steps run on the first connection; null when there is no trigger. */
  trigger: Step[] | null;
  /** With several tails: how one is picked (default round-robin). */
  balance?: BalancePolicy;
  /** Health checks of the tails: every so many ms (default 5 s), null for `health off`. */
  healthMs?: number | null;
  /**
   * `idle DURATION` (ms): with no connection and no byte for that long, what the trigger made
   * is released and the trigger armed again (scale to zero). Only with a trigger.
   */
  idle?: number;
  /**
   * `idle-action stop|pause`: what idle does to the trigger's containers: stopped (the
   * default; the next connection starts them again), or paused (`docker pause`: frozen with
   * their memory, thawed by the next connection in milliseconds).
   */
  idleAction?: IdleAction;
  /**
   * `allow CIDR` (repeatable, on the head): the only networks clients are taken from; the
   * others are refused at accept (a UDP datagram dropped), counted, and wake nothing. The
   * words as given (each checked by parseCidr).
   */
  allow?: string[];
  /**
   * `wake-on-data`: a client counts (runs the trigger, is activity for idle, reaches the
   * tail) only once it has sent its first byte; a connect-and-close starts nothing. Only with
   * a trigger.
   */
  wakeOnData?: boolean;
  /** `ready MODE`: when the tail counts as ready (dialed); absent: once it accepts. */
  ready?: ReadyCheck;
  /**
   * `dial-timeout DURATION` (ms): this segment's own `wormholed --dial-timeout`: how long a
   * client waits for its tail (retried dials, a container down, `ready`).
   */
  dialTimeoutMs?: number;
}

/**
 * `ready MODE`: a new connection is dialed to the tail only once the tail is ready (SPEC.md,
 * "Smarter activation"): `health`, Docker's HEALTHCHECK says healthy; `banner`, a probe
 * connection receives the tail's first bytes; `exec`, `argv` run in the tail's container exits 0.
 */
export const READY_MODES = ['health', 'banner', 'exec'] as const;
export type ReadyMode = (typeof READY_MODES)[number];
export interface ReadyCheck {
  mode: ReadyMode;
  /** exec's command, split as a shell would but with no shell (src/api/splitwords.ts). */
  argv?: string[];
}
const READY_EXEC_NEEDS = 'ready exec needs a command, e.g. ready exec "pg_isready -h 127.0.0.1"';

/** What idle does to a trigger's containers. */
export const IDLE_ACTIONS = ['stop', 'pause'] as const;
export type IdleAction = (typeof IDLE_ACTIONS)[number];

/** Check a peer host word. */
export function checkPeerHost(host: string, verb: string): string {
  // `:PORT` is 127.0.0.1:PORT, as in URLs (a second daemon on this machine).
  if (/^:\d{1,5}$/.test(host)) host = `127.0.0.1${host}`;
  const m = PEER_PATTERN.exec(host);
  if (!m || (m[2] && Number(m[2].slice(1)) > 65535)) {
    throw new UsageError(`${verb} "${host}": expected a host name or address, optionally with :port`);
  }
  return host;
}

/** Actions that come over the wire did not pass through tokenize: check their arguments. */
function checkArity(verb: Verb, args: readonly string[]): void {
  const ok = NO_ARG.includes(verb)
    ? args.length === 0
    : ONE_ARG.includes(verb)
      ? args.length === 1
      : verb === 'docker-ns'
        ? args.length <= 1
        : verb === 'ready'
          ? args.length === (args[0] === 'exec' ? 2 : 1)
          : args.length >= 1;
  if (!ok) throw new UsageError(`${verb} was given ${args.length} argument(s): see 'wormhole help create'`);
}

/**
 * Actions -> plan tree. `tail` switches to the tail; `trigger` switches to the tail and
 * defers what follows to the first connection; `child`, `chain`, `remote`, `tunnel` and
 * `udptunnel` hand every following action to a new segment, which starts in head mode.
 * `id`, `idle`, `idle-action` and `wake-on-data` are the segment's wherever they are written;
 * `idle` and `wake-on-data` need a `trigger`, `idle-action` an `idle`.
 */
export function parsePlan(actions: readonly Action[]): Plan {
  const plan = parseSegment(actions);
  if (plan.idleAction !== undefined && plan.idle === undefined)
    throw new UsageError(
      'idle-action needs idle: e.g. url :3306 idle 10m idle-action pause trigger docker-run IMAGE',
    );
  if (plan.allow && headProto(plan) === 'unix')
    throw new UsageError('allow is for a TCP or UDP head: a unix head has no client address to check');
  if (plan.wakeOnData && plan.trigger === null)
    throw new UsageError(
      'wake-on-data needs a trigger: it decides which clients run it (e.g. url :8080 wake-on-data trigger docker-run IMAGE)',
    );
  if (plan.ready) checkReady(plan, plan.ready);
  if (plan.idle !== undefined && plan.trigger === null) {
    throw new UsageError(
      'idle needs a trigger: what the trigger runs is what idle releases (e.g. url :3306 idle 10m trigger docker-run IMAGE)',
    );
  }
  checkRanges(plan);
  return plan;
}

/**
 * `ready health` and `ready exec` ask the tail's container: one must be there (a tail's
 * docker-run or docker-ns CONTAINER); `banner` reads a stream; and each waits for one tail.
 */
function checkReady(plan: Plan, ready: ReadyCheck): void {
  const steps = [...plan.init, ...(plan.trigger ?? [])];
  if (steps.some((s) => s.op === 'also' || s.op === 'docker-label'))
    throw new UsageError('ready waits for one tail: it cannot be used with also or docker-label');
  const inContainer = steps.some(
    (s) =>
      (s.op === 'docker-run' && s.side === 'tail') ||
      (s.op === 'docker-ns' && s.side === 'tail' && s.container !== null),
  );
  if (ready.mode !== 'banner' && !inContainer)
    throw new UsageError(
      `ready ${ready.mode} asks the tail's container: give the tail one (tail docker-ns NAME, or trigger docker-run IMAGE), or use ready banner`,
    );
  if (ready.mode === 'banner' && headProto(plan) === 'udp')
    throw new UsageError(
      'ready banner reads the first bytes of a stream: a UDP tail has none (use health or exec)',
    );
}

/** Does a plan, or one under it, have a port range? */
function hasRange(plan: Plan): boolean {
  return [...plan.init, ...(plan.trigger ?? [])].some(
    (s) => (s.op === 'url' && s.url.portEnd !== undefined) || ('plan' in s && hasRange(s.plan)),
  );
}

/** The last url of a side that named a port (its range, if any): the port the end ends up with. */
function lastPort(steps: readonly Step[], side: Side): UrlParts | undefined {
  let found: UrlParts | undefined;
  for (const s of steps) if (s.op === 'url' && s.side === side && s.url.port !== undefined) found = s.url;
  return found;
}

/**
 * Port ranges (SPEC.md "Port ranges"): a tail range has the head range's length (port i to
 * port i) and needs one; a range segment has one tail and no leg to a peer or a child (those
 * carry one port: they would half-work, so they are refused here, before anything is made).
 */
function checkRanges(plan: Plan): void {
  const steps = [...plan.init, ...(plan.trigger ?? [])];
  for (const s of steps)
    if ('plan' in s && hasRange(s.plan))
      throw new UsageError(
        `a port range cannot be in a "${s.op}" segment yet (its leg carries one port): make a segment per port`,
      );
  const head = lastPort(plan.init, 'head');
  const tail = lastPort(steps, 'tail');
  const headRange = head?.portEnd !== undefined;
  if (tail?.portEnd !== undefined) {
    if (!headRange)
      throw new UsageError(
        `tail url :${tail.port}-${tail.portEnd}: a tail range needs a head range of the same length (url :A-B)`,
      );
    if (portCount(tail) !== portCount(head!))
      throw new UsageError(
        `tail url :${tail.port}-${tail.portEnd} has ${portCount(tail)} ports but the head :${head!.port}-${head!.portEnd} has ${portCount(head!)}: give the same length, or one tail port`,
      );
  }
  if (!headRange) return;
  const range = `url :${head!.port}-${head!.portEnd}`;
  for (const s of steps) {
    if (s.op === 'also' || s.op === 'docker-label')
      throw new UsageError(`${range}: a port range takes one tail (not "${s.op}")`);
    if (
      s.op === 'remote' ||
      s.op === 'tunnel' ||
      s.op === 'udptunnel' ||
      s.op === 'child' ||
      s.op === 'chain'
    )
      throw new UsageError(
        `${range}: a port range cannot have "${s.op}" yet (it carries one port): make a segment per port`,
      );
    if (s.op === 'transparent')
      throw new UsageError(
        `${range}: a port range cannot have a transparent tail yet: make a segment per port`,
      );
  }
}

/** The head's protocol, as its last head url says (undefined: none given). */
function headProto(plan: Plan): string | undefined {
  const urls = plan.init.filter((s) => s.op === 'url' && s.side === 'head');
  const last = urls[urls.length - 1];
  return last?.op === 'url' ? last.url.proto : undefined;
}

/** `ready MODE [CMD]`'s words, checked. */
function parseReady(plan: Plan, side: Side, args: readonly string[]): ReadyCheck {
  // whether the tail is ready is the tail's question, as proxy-protocol's
  if (side === 'head') throw new UsageError('ready sets the tail: put it after "tail" (or "trigger")');
  if (plan.ready) throw new UsageError('ready is given twice for one segment');
  const mode = args[0];
  if (!(READY_MODES as readonly string[]).includes(mode))
    throw new UsageError(`ready "${mode}": expected ${READY_MODES.join(', ')}`);
  if (mode !== 'exec') return { mode: mode as ReadyMode };
  const argv = splitPlan(args[1]);
  if (argv.length === 0) throw new UsageError(READY_EXEC_NEEDS);
  return { mode, argv };
}

/** One segment's actions, up to its child's (which parsePlan reads on its own). */
function parseSegment(actions: readonly Action[]): Plan {
  const plan: Plan = { init: [], trigger: null };
  let side: Side = 'head';
  let steps = plan.init;
  for (let i = 0; i < actions.length; i++) {
    const { verb, args } = actions[i];
    checkArity(verb, args);
    switch (verb) {
      case 'id':
        if (plan.id !== undefined) throw new UsageError('id is given twice for one segment');
        if (!ID_PATTERN.test(args[0])) {
          throw new UsageError(
            `id "${args[0]}" is not valid: use letters, digits, "-", "_" or ".", at most 64`,
          );
        }
        plan.id = args[0];
        break;
      case 'idle':
        if (plan.idle !== undefined) throw new UsageError('idle is given twice for one segment');
        plan.idle = parseDuration(args[0], 'idle');
        break;
      case 'idle-action':
        if (plan.idleAction !== undefined) throw new UsageError('idle-action is given twice for one segment');
        if (!(IDLE_ACTIONS as readonly string[]).includes(args[0]))
          throw new UsageError(`idle-action "${args[0]}": expected ${IDLE_ACTIONS.join(' or ')}`);
        plan.idleAction = args[0] as IdleAction;
        break;
      case 'allow':
        // who may connect is the head's question: the tail's side has no clients
        if (side === 'tail')
          throw new UsageError(
            'allow sets the head: put it before "tail" (url :8080 allow 10.0.0.0/8 tail ...)',
          );
        parseCidr(args[0]);
        (plan.allow ??= []).push(args[0]);
        break;
      case 'ready':
        plan.ready = parseReady(plan, side, args);
        break;
      case 'dial-timeout':
        if (plan.dialTimeoutMs !== undefined)
          throw new UsageError('dial-timeout is given twice for one segment');
        plan.dialTimeoutMs = parseDuration(args[0], 'dial-timeout');
        break;
      case 'wake-on-data':
        if (plan.wakeOnData) throw new UsageError('wake-on-data is given twice for one segment');
        plan.wakeOnData = true;
        break;
      case 'url': {
        const url = parseUrl(args[0]);
        // a mode is the head's socket file's: a tail's file belongs to its server
        if (url.mode !== undefined && side === 'tail')
          throw new UsageError(`url "${args[0]}": ?mode is for a head's socket file, not a tail's`);
        steps.push({ op: 'url', side, url });
        break;
      }
      case 'proxy-protocol':
        // what the tail's server reads first: a tail setting (SPEC: "in tail mode")
        if (side === 'head')
          throw new UsageError('proxy-protocol sets the tail: put it after "tail" (or "trigger")');
        if (args[0] !== 'v1' && args[0] !== 'v2')
          throw new UsageError(`proxy-protocol "${args[0]}": expected v1 or v2`);
        steps.push({ op: 'proxy-protocol', side, version: args[0] === 'v1' ? 1 : 2 });
        break;
      case 'transparent':
        // how the tail is dialed: a tail setting, as proxy-protocol
        if (side === 'head')
          throw new UsageError('transparent sets the tail: put it after "tail" (or "trigger")');
        steps.push({ op: 'transparent' });
        break;
      case 'docker-ns':
        if (args[0] !== undefined && !CONTAINER_PATTERN.test(args[0])) {
          throw new UsageError(`docker-ns "${args[0]}" is not a container id or name`);
        }
        steps.push({ op: 'docker-ns', side, container: args[0] ?? null });
        break;
      case 'docker-run':
        steps.push({ op: 'docker-run', side, args: [...args] });
        break;
      case 'also':
        if (side !== 'tail')
          throw new UsageError('also starts another tail: use it after tail (tail url :80 also url :81)');
        steps.push({ op: 'also' });
        break;
      case 'docker-label':
        if (side !== 'tail')
          throw new UsageError(
            'docker-label names tails: use it after tail (tail url :80 docker-label app=web)',
          );
        if (!LABEL_PATTERN.test(args[0]))
          throw new UsageError(`docker-label "${args[0]}" is not KEY=VALUE (e.g. docker-label app=web)`);
        steps.push({ op: 'docker-label', label: args[0] });
        break;
      case 'balance':
        if (plan.balance !== undefined) throw new UsageError('balance is given twice for one segment');
        if (!(BALANCE_POLICIES as readonly string[]).includes(args[0]))
          throw new UsageError(`balance "${args[0]}": use ${BALANCE_POLICIES.join(', ')}`);
        plan.balance = args[0] as BalancePolicy;
        break;
      case 'health':
        if (plan.healthMs !== undefined) throw new UsageError('health is given twice for one segment');
        plan.healthMs = args[0] === 'off' ? null : parseDuration(args[0], 'health');
        break;
      case 'tail':
        side = 'tail';
        break;
      case 'trigger':
        if (plan.trigger !== null) throw new UsageError('trigger is given twice for one segment');
        side = 'tail';
        plan.trigger = [];
        steps = plan.trigger;
        break;
      case 'child':
      case 'chain': {
        const child = parsePlan(actions.slice(i + 1));
        steps.push({ op: verb, plan: child });
        return plan;
      }
      case 'remote':
      case 'tunnel':
      case 'udptunnel': {
        // The peer parses these again: they are what goes on the wire.
        const rest = actions.slice(i + 1);
        steps.push({ op: verb, host: checkPeerHost(args[0], verb), plan: parsePlan(rest), actions: rest });
        return plan;
      }
    }
  }
  return plan;
}
