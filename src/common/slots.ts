/**
 * Small per-segment arrays kept at their size. V8 gives an array that grows by a store past
 * its end (or a push) room for 17 elements at once (152 bytes); a head's per-slot arrays hold
 * one tail almost always, and with 10,000 idle segments that room was about 1 KiB a segment
 * (issue 20's memory per idle segment).
 */

/**
 * `a` with `a[i] = v`: `a` itself when i is within it, else a copy of exactly i + 1 elements
 * (`new Array(n)` is allocated at n). Slots never set stay holes, as in a grown array.
 */
export function placed<T>(a: T[], i: number, v: T): T[] {
  if (i < a.length) {
    a[i] = v;
    return a;
  }
  const b = new Array<T>(i + 1);
  for (let k = 0; k < a.length; k++) if (k in a) b[k] = a[k];
  b[i] = v;
  return b;
}
