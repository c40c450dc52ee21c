/**
 * The gate of changes (create, delete) around a takeover (issue 18, hole 5).
 *
 * A running daemon hands its listening sockets to a successor, which then reads the segment
 * records from the state directory and builds them again. A change the old daemon made after
 * its snapshot was lost (a delete undone, its segment back in the successor; a create whose
 * head the successor never got), and one the successor took before it served raced its own
 * restore. So the old daemon shuts the gate before it hands anything over, and waits for the
 * changes already in flight to end (their records written); the successor keeps its gate shut
 * until it serves. A change meanwhile is refused in one line, to be tried again. If the
 * successor leaves before it serves, the old daemon opens the gate again.
 */
import { WormholeError } from '../common/errors';

/** Counts the changes in flight, and refuses new ones while shut. */
export class ChangeGate {
  private shut = false;
  private inFlight = 0;
  private idle: (() => void)[] = [];

  /** Run a change, unless the gate is shut (then TAKEOVER_UNDER_WAY). */
  async run<T>(change: () => Promise<T>): Promise<T> {
    if (this.shut)
      throw new WormholeError('TAKEOVER_UNDER_WAY', 'a takeover is under way: try again in a moment');
    this.inFlight++;
    try {
      return await change();
    } finally {
      if (--this.inFlight === 0) for (const done of this.idle.splice(0)) done();
    }
  }

  /**
   * Refuse new changes from now on; resolves true once those in flight have ended, false if
   * they have not within `ms` (the gate stays shut: the caller opens it again or goes on).
   */
  close(ms = 0): Promise<boolean> {
    this.shut = true;
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.idle = this.idle.filter((d) => d !== done);
        resolve(false);
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idle.push(done);
    });
  }

  /** Take changes again. */
  open(): void {
    this.shut = false;
  }
}
