import { placed } from './slots';

/** Something that can be released; release must be idempotent. */
export interface Disposable {
  dispose(): void | Promise<void>;
}

/** Up to this many items a stack's array is copied at its size on each add, past it grown as V8 grows it. */
const SMALL = 8;

/** Release a resource, or run a release function. */
function release(item: Disposable | (() => void | Promise<void>)): void | Promise<void> {
  return typeof item === 'function' ? item() : item.dispose();
}

/**
 * The items of a stack that has none: one array shared by all, never written (keep copies at
 * the first add: placed() writes only within an array's length). A segment's create-time
 * scope is empty almost always (issue 20's memory per idle segment).
 */
const NONE = Object.freeze([]) as never[];

/**
 * An owner of resources that releases them in reverse order of acquisition. Anything added
 * after dispose() has run is disposed at once, so a late-arriving resource never leaks.
 */
export class DisposableStack implements Disposable {
  /**
   * Resources and release functions (kept as they are: a `{ dispose }` around each was 32
   * bytes more). Sized to what it holds up to a few (every segment has a stack of about four,
   * and V8 gives an array grown by a push room for 17: issue 20's memory per idle segment).
   */
  private items: (Disposable | (() => void | Promise<void>))[] = NONE;
  private disposed = false;

  /** Add a resource; returns it for chaining. */
  add<T extends Disposable>(item: T): T {
    this.keep(item);
    return item;
  }

  /** Add a release function. */
  defer(fn: () => void | Promise<void>): void {
    this.keep(fn);
  }

  private keep(item: Disposable | (() => void | Promise<void>)): void {
    if (this.disposed) void Promise.resolve(release(item)).catch(() => undefined);
    else if (this.items.length < SMALL) this.items = placed(this.items, this.items.length, item);
    else this.items.push(item);
  }

  /** Release everything, last added first; errors are collected, not thrown early. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const errors: unknown[] = [];
    while (this.items.length > 0) {
      const item = this.items.pop()!;
      try {
        await release(item);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'several resources failed to close');
  }
}
