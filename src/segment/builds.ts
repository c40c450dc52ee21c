/**
 * The top segments being built, and which of them a delete has cut short (issue 18, hole 6).
 *
 * A create runs its create-time steps (a docker-run pulling its image, a peer making a
 * child) before the segment exists, then opens it, then has its record written complete. A
 * delete in that window used to miss it (NOT_FOUND), or to close the segment only for the
 * build's commit to write its record again, so that it came back at the next start. So a
 * delete of a segment still being built marks its build aborted: the build looks at the mark
 * after each step that may take time and before its record is committed, and unwinds (what
 * it made is removed, its record forgotten, the create answers ABORTED). The id stays taken
 * until the unwinding is over, so that a new create with it cannot meet what is being undone.
 */
import { WormholeError } from '../common/errors';

/** Builds of top segments in flight, by id: aborted or not, and the key that asked. */
export class Builds {
  private readonly running = new Map<string, { aborted: boolean; owner: string }>();

  /** A top segment's build starts, for the key named `owner`. */
  start(id: string, owner: string): void {
    this.running.set(id, { aborted: false, owner });
  }

  /** The key whose create builds `id` (undefined: no build of it runs). */
  owner(id: string): string | undefined {
    return this.running.get(id)?.owner;
  }

  /** It is over (built, failed or unwound). */
  end(id: string): void {
    this.running.delete(id);
  }

  /** Is `id` being built (or unwound)? */
  has(id: string): boolean {
    return this.running.has(id);
  }

  /** A delete came for `id` while it was being built: false when no build of it runs. */
  abort(id: string): boolean {
    const b = this.running.get(id);
    if (!b) return false;
    b.aborted = true;
    return true;
  }

  /** Was `id`'s build cut short by a delete? */
  aborted(id: string): boolean {
    return this.running.get(id)?.aborted === true;
  }

  /** Throws ABORTED if `id`'s build was cut short by a delete (ids of no top build pass). */
  check(id: string): void {
    if (this.aborted(id))
      throw new WormholeError('ABORTED', `segment ${id} was deleted while it was being created`);
  }
}
