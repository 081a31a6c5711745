/**
 * A priority queue of items by due time (a binary min-heap), for replaying a year of follow-ups in
 * the order they fall due. Items due at the same instant come out in the order they were added,
 * so a replay never depends on the heap's layout.
 */
export class DueQueue<T> {
  private readonly heap: { at: number; seq: number; item: T }[] = [];
  private added = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Adds `item`, due at `at` (epoch ms). */
  push(at: number, item: T): void {
    const heap = this.heap;
    heap.push({ at, seq: this.added++, item });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(heap, index, parent)) break;
      swap(heap, index, parent);
      index = parent;
    }
  }

  /** When the item due first is due, without taking it; undefined when empty. */
  peekAt(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Takes the item due first, with its due time; undefined when empty. */
  pop(): { at: number; item: T } | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let first = index;
        if (left < heap.length && before(heap, left, first)) first = left;
        if (right < heap.length && before(heap, right, first)) first = right;
        if (first === index) break;
        swap(heap, index, first);
        index = first;
      }
    }
    return { at: top.at, item: top.item };
  }
}

type Entry = { at: number; seq: number };

function before(heap: readonly Entry[], a: number, b: number): boolean {
  const x = heap[a] as Entry;
  const y = heap[b] as Entry;
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

function swap<E>(heap: E[], a: number, b: number): void {
  const x = heap[a] as E;
  heap[a] = heap[b] as E;
  heap[b] = x;
}
