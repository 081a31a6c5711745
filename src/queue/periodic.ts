import { isConnectionLoss } from "../store/redis-client.js";

/**
 * A background task of the worker: runs after `firstMs`, then `everyMs` after each run ended (so
 * runs never overlap), until stopped; `stop` waits for a run in progress. A run reports its own
 * outcome: one that throws is handed to `failed` and the next still comes. A run that failed
 * because its connection was dropped after stop was asked (a shutdown with Redis away) was
 * abandoned, not failed: not handed on.
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
      .catch((error: unknown) => {
        if (!abandoned(stopped, error)) options.failed(error);
      })
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

/** Whether a background round's `error` is its connection dropped by a stop already asked. */
export function abandoned(stopped: boolean, error: unknown): boolean {
  return stopped && isConnectionLoss(error);
}
