/**
 * A background task of the worker: runs after `firstMs`, then `everyMs` after each run ended (so
 * runs never overlap), until stopped; `stop` waits for a run in progress. A run reports its own
 * outcome: one that throws is handed to `failed` and the next still comes.
 */
export interface Periodic {
  start(): void;
  stop(): Promise<void>;
  /** Whether stop was asked: a long run checks it between batches. */
  readonly stopped: () => boolean;
}

export function periodic(options: {
  readonly firstMs: number;
  readonly everyMs: number;
  readonly run: () => Promise<void>;
  readonly failed: (error: unknown) => void;
}): Periodic {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  function tick(): void {
    running = options
      .run()
      .catch(options.failed)
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, options.everyMs);
      });
  }

  return {
    start() {
      stopped = false;
      if (options.firstMs <= 0) tick();
      else timer = setTimeout(tick, options.firstMs);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
    stopped: () => stopped,
  };
}
