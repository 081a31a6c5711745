import type { Worker } from "bullmq";
import type { Logger } from "../logger.js";
import { isWriteRefusal } from "../store/redis-client.js";

/** How long a BullMQ worker takes no jobs after Redis refused one of its writes. */
export const WRITE_REFUSAL_PAUSE_MS = 5_000;

/** A worker's pauses are logged at most this often: one line, with how many there were. */
const LOG_EVERY_MS = 60_000;

/** What pauseOnWriteRefusal gives the worker's error listener and its shutdown. */
export interface WriteRefusalPause {
  /** Whether `error` is a write refusal, handled here (the caller logs any other error). */
  handle(error: unknown): boolean;
  /** No resume after this (the worker is closing). */
  stop(): void;
}

/**
 * BullMQ's worker fetches its next job again at once when Redis answers the fetch with an error
 * reply (only a lost connection makes it wait): with Redis out of memory (maxmemory under
 * noeviction) or unable to save (MISCONF), a worker with a job due spun on refused fetches,
 * thousands a second, each an error line. On such a refusal it takes no new jobs for `pauseMs`
 * (jobs in flight go on), then tries again; the pauses are logged once a minute at most (each one
 * is counted, onPause), and the errors that come while paused are not logged again.
 */
export function pauseOnWriteRefusal(deps: {
  readonly worker: Pick<Worker, "pause" | "resume">;
  /** The worker, as the logs name it (`intake`, `delivery 0`, …). */
  readonly label: string;
  readonly logger: Logger;
  readonly now: () => number;
  readonly pauseMs?: number;
  /** Told of each pause as it begins (followups_write_refusal_pauses_total). */
  readonly onPause?: () => void;
}): WriteRefusalPause {
  const pauseMs = deps.pauseMs ?? WRITE_REFUSAL_PAUSE_MS;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let loggedAt = Number.NEGATIVE_INFINITY;
  let pauses = 0;
  const quietly = (work: Promise<unknown>) => void work.catch(() => undefined);
  return {
    handle(error) {
      if (!isWriteRefusal(error)) return false;
      if (stopped || timer) return true;
      pauses += 1;
      deps.onPause?.();
      if (deps.now() - loggedAt >= LOG_EVERY_MS) {
        deps.logger.warn(
          { err: error, worker: deps.label, pauseMs, pauses },
          "Redis refuses writes (out of memory, or unable to save its snapshot): this worker takes no new jobs for pauseMs at a time until it takes them again; free memory (maxmemory) or disk on the Redis",
        );
        loggedAt = deps.now();
        pauses = 0;
      }
      quietly(deps.worker.pause(true));
      timer = setTimeout(() => {
        timer = undefined;
        if (!stopped) quietly(deps.worker.resume());
      }, pauseMs);
      return true;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
