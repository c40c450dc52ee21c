/** Something that can be released; release must be idempotent. */
export interface Disposable {
  dispose(): void | Promise<void>;
}

/**
 * An owner of resources that releases them in reverse order of acquisition. Anything added
 * after dispose() has run is disposed at once, so a late-arriving resource never leaks.
 */
export class DisposableStack implements Disposable {
  private readonly items: Disposable[] = [];
  private disposed = false;

  /** Add a resource; returns it for chaining. */
  add<T extends Disposable>(item: T): T {
    if (this.disposed) void Promise.resolve(item.dispose()).catch(() => undefined);
    else this.items.push(item);
    return item;
  }

  /** Add a release function. */
  defer(fn: () => void | Promise<void>): void {
    this.add({ dispose: fn });
  }

  /** Release everything, last added first; errors are collected, not thrown early. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const errors: unknown[] = [];
    while (this.items.length > 0) {
      const item = this.items.pop()!;
      try {
        await item.dispose();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'several resources failed to close');
  }
}
