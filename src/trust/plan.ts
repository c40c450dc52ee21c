/**
 * A create's plan against a key's rights, before anything is made: every head it would open
 * (children's included), every tail it would reach (each `also`, those of a trigger, a peer
 * for `remote`), every image `docker-run` would run. The ends are worked out from the actions
 * as the segment layer does (src/segment/endpoint.ts: a head's host is 127.0.0.1 unless named,
 * a tail takes the head's protocol and port), without resolving names or touching anything.
 * An end in a container's namespace is named `docker:NAME` (`docker-ns NAME`, or
 * `docker-run --name NAME`; the image stands for the name when none is given).
 */
import type { Plan, Step } from '../api/grammar';
import { DEFAULT_PORT } from '../common/address';
import { WormholeError } from '../common/errors';
import {
  type Addr,
  type AddrRule,
  type KeyRights,
  formatAddr,
  mayListen,
  mayOpen,
  mayRunImage,
} from './rights';

/** What the plan check needs of a docker-run's words (src/docker/args.ts parses them). */
export type RunReader = (args: string[]) => { image: string; name?: string };

/** One end as the actions leave it; the namespace as a word (null: the host's own). */
interface End {
  proto?: string;
  ns?: string | null;
  host?: string;
  port?: number;
  path?: string;
}

/** Where a peer-create's child listens (its head), as the parent asked. */
export interface PlanBase {
  proto: string;
  host?: string;
  port: number;
}

const LOOPBACK = '127.0.0.1';

function forbidden(message: string): WormholeError {
  return new WormholeError('FORBIDDEN', message);
}

function rules(list: AddrRule[] | null): string {
  return (list ?? []).map((r) => r.text).join(',');
}

/** The head with the grammar's defaults (port 0: any free port, which only `*` allows). */
function headAddr(h: End): Addr {
  if (h.proto === 'unix') return { ns: h.ns ?? null, path: h.path ?? '' };
  return { ns: h.ns ?? null, host: h.host ?? LOOPBACK, port: h.port ?? 0 };
}

/** The tail with the grammar's defaults; undefined when it is not complete (refused later). */
function tailAddr(t: End, h: End): Addr | undefined {
  const unix = t.proto
    ? t.proto === 'unix'
    : h.proto === 'unix' && t.port === undefined && t.host === undefined;
  if (unix) {
    const p = t.path ?? (h.proto === 'unix' ? h.path : undefined);
    return p === undefined ? undefined : { ns: t.ns ?? null, path: p };
  }
  const port = t.port ?? h.port ?? 0;
  return port === 0 ? undefined : { ns: t.ns ?? null, host: t.host ?? LOOPBACK, port };
}

/** Walks one key over one plan tree. */
class PlanCheck {
  constructor(
    private readonly key: KeyRights,
    private readonly run: RunReader,
  ) {}

  private listen(addr: Addr): void {
    if (!mayListen(this.key, addr))
      throw forbidden(
        `key "${this.key.name}" may not listen on ${formatAddr(addr)} (permit-listen=${rules(this.key.rights.listen)})`,
      );
  }

  private open(addr: Addr): void {
    openOrRefuse(this.key, addr, '');
  }

  /**
   * `ready exec` runs a command as root in the tail's container. In one this plan's
   * `docker-run` starts, the key could have given that command already (and its image is
   * checked); in a container named by `docker-ns`, someone else's, it is a new power: only for
   * a key whose opens and images are not restricted.
   */
  private execIn(plan: Plan): void {
    const { open, image } = this.key.rights;
    if (open === null && image === null) return;
    const ends = [...plan.init, ...(plan.trigger ?? [])].filter(
      (s) => (s.op === 'docker-run' || s.op === 'docker-ns') && s.side === 'tail',
    );
    if (ends[ends.length - 1]?.op !== 'docker-run')
      throw forbidden(
        `key "${this.key.name}" may not run commands in a container it did not start: ready exec needs the tail's docker-run (or use ready banner)`,
      );
  }

  private image(args: string[]): { image: string; name?: string } {
    const spec = this.run(args);
    if (!mayRunImage(this.key, spec.image))
      throw forbidden(
        `key "${this.key.name}" may not run the image ${spec.image} (permit-image=${(this.key.rights.image ?? []).join(',')})`,
      );
    return spec;
  }

  /** One segment: its steps at create time, then its trigger's, then its ends. */
  segment(plan: Plan, base: End): void {
    if (plan.ready?.mode === 'exec') this.execIn(plan);
    const head: End = { ...base };
    let tails: End[] = [{}];
    this.steps(plan.init, head, tails);
    if (plan.trigger) {
      tails = tails.map((t) => ({ ...t }));
      this.steps(plan.trigger, head, tails);
    }
    this.listen(headAddr(head));
    for (const t of tails) {
      const addr = tailAddr(t, head);
      if (addr) this.open(addr);
    }
  }

  private steps(steps: Step[], head: End, tails: End[]): void {
    for (const step of steps) {
      const tail = tails[tails.length - 1];
      switch (step.op) {
        case 'url': {
          // each part the URL names is set; the others stay as they were
          const end = step.side === 'head' ? head : tail;
          for (const k of ['proto', 'ns', 'host', 'port', 'path'] as const)
            if (step.url[k] !== undefined) Object.assign(end, { [k]: step.url[k] });
          break;
        }
        case 'docker-ns':
          (step.side === 'head' ? head : tail).ns =
            step.container === null ? null : `docker:${step.container}`;
          break;
        case 'docker-run': {
          const spec = this.image(step.args);
          (step.side === 'head' ? head : tail).ns = `docker:${spec.name ?? spec.image}`;
          break;
        }
        case 'docker-label':
          tail.ns = `docker:label=${step.label}`;
          break;
        case 'also':
          tails.push({ ...tail });
          break;
        case 'child':
        case 'chain': {
          // the child listens where the parent's tail points
          const at = tailAddr(tail, head);
          const stream = head.proto === 'unix' ? 'tcp' : head.proto;
          const proto = at && 'path' in at ? 'unix' : (tail.proto ?? stream);
          this.segment(step.plan, { ...at, proto });
          break;
        }
        case 'remote':
        case 'tunnel':
        case 'udptunnel': {
          // the peer checks the child's own ends against the key this daemon holds there
          checkPeer(this.key, step.host);
          break;
        }
        case 'proxy-protocol':
        case 'transparent':
          break;
      }
    }
  }
}

function openOrRefuse(key: KeyRights, addr: Addr, what: string): void {
  if (!mayOpen(key, addr))
    throw forbidden(
      `key "${key.name}" may not open ${what}${formatAddr(addr)} (permit-open=${rules(key.rights.open)})`,
    );
}

/**
 * Refuse a peer this key may not reach (`remote`, `tunnel`, `tunnel-create`): the peer's API
 * address, `host[:port]` (port 9999 unless named), against its permit-open.
 */
export function checkPeer(key: KeyRights, word: string): void {
  const [host, port] = splitPeer(word);
  openOrRefuse(key, { ns: null, host, port }, 'the peer ');
}

/** A peer word (`host[:port]`, `[v6][:port]`) as host and port. */
function splitPeer(word: string): [string, number] {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(word);
  if (!m) return [word, DEFAULT_PORT];
  return [m[1].replace(/^\[(.*)\]$/, '$1'), m[2] ? Number(m[2]) : DEFAULT_PORT];
}

/**
 * Refuse (FORBIDDEN, one line naming the key and what it may not do) a plan this key may not
 * carry out; `base`: a peer-create's head.
 */
export function checkPlan(key: KeyRights, plan: Plan, run: RunReader, base?: PlanBase): void {
  new PlanCheck(key, run).segment(plan, base ? { ...base } : {});
}
