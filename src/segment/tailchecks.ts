/**
 * Checks a create makes of its tails before anything serves: a host unix tail that
 * --allow-unix does not allow (src/segment/hostunix.ts), and a trigger whose tail, as far as
 * its URLs say already, could only be refused at the first connection.
 */
import * as fs from 'node:fs';
import type { Step } from '../api/grammar';
import { WormholeError } from '../common/errors';
import { DEFAULT_HOST, type Draft, applyUrl, checkNotSelf, resolveTail, tailProto } from './endpoint';
import { confineUnixTail } from './hostunix';
import type { Segment } from './segment';
import { checkJoin } from './streamends';
import { checkTransparentEnds } from './transparent';

/** Refuse a host-path unix tail that --allow-unix (`allowUnix`) does not allow. */
export async function checkUnixTails(
  tails: readonly Draft[],
  head: Draft,
  allowUnix: readonly string[],
): Promise<void> {
  for (const d of tails)
    if (!d.label && !d.container && tailProto(d, head) === 'unix')
      confineUnixTail(await resolveTail(d, head), allowUnix);
}

/** Refuse at create time a trigger whose tail could only ever be the head itself. */
export async function checkTriggerStatically(
  seg: Segment,
  steps: Step[],
  allowUnix: readonly string[],
): Promise<void> {
  const tail: Draft = { ...seg.tailDrafts[seg.tailDrafts.length - 1] };
  for (const s of steps) {
    if (s.op === 'url') applyUrl(tail, s.url, false);
    if (s.op === 'proxy-protocol') tail.proxy = s.version;
    if (s.op === 'transparent') tail.transparent = true;
  }
  checkJoin(seg.head.proto, tailProto(tail, seg.headDraft), tail.proxy);
  if (tail.transparent) {
    // (a tail given no host in a container is the container's own address: known once it runs)
    const nsLater = steps.some((s) => s.op === 'docker-run' || s.op === 'docker-ns');
    const proto = tailProto(tail, seg.headDraft);
    if (proto === 'unix' || tail.host !== undefined || (!tail.ns && !nsLater)) {
      const port = tail.port ?? seg.headDraft.port ?? 0;
      checkTransparentEnds(seg.head, { proto, ns: tail.ns ?? null, host: tail.host ?? DEFAULT_HOST, port });
    }
  }
  const urlsOnly = steps.every((s) => s.op === 'url' || s.op === 'proxy-protocol' || s.op === 'transparent');
  // (and a host unix tail that --allow-unix does not allow is refused now, not at the first connection)
  if (urlsOnly) await checkUnixTails([tail], seg.headDraft, allowUnix);
  if (seg.head.proto === 'unix' || tailProto(tail, seg.headDraft) === 'unix') return;
  if (!urlsOnly || (tail.ns && !fs.existsSync(tail.ns))) return;
  const port = tail.port ?? seg.headDraft.port ?? 0;
  if (port === 0)
    throw new WormholeError('TAIL_NO_PORT', 'the tail has no port: name one, e.g. "tail url :80"');
  // A tail with no host is 127.0.0.1 (as resolveTail makes it), not the head's host: a
  // tunnel child's head is the tunnel address, its `url :P` tail the peer's loopback.
  if (tail.host === undefined || tail.host === seg.head.host) {
    checkNotSelf(seg.head, seg.boundPort, {
      proto: tail.proto ?? seg.head.proto,
      ns: tail.ns ?? null,
      host: tail.host ?? DEFAULT_HOST,
      port,
    });
  }
}
