import type { Logger } from "pino";
import type { SpooledWebhook, WebhookSpool } from "./webhook-spool.js";

/** How often the spool is looked at while the worker runs. */
export const SPOOL_REPLAY_INTERVAL_MS = 5_000;

/** What a replay round does with one file, decided from how handling it went. */
export type ReplayVerdict = "done" | "later" | "aside";

/** Handled: removed; Redis away: kept, the round stops; anything else: moved aside, never retried. */
export function replayVerdict(outcome: { ok: true } | { ok: false; redisAway: boolean }) {
  if (outcome.ok) return "done" satisfies ReplayVerdict;
  return outcome.redisAway ? ("later" satisfies ReplayVerdict) : ("aside" satisfies ReplayVerdict);
}

/** The spool's files as the metrics show them: waiting to be replayed, and moved aside. */
export interface SpoolCounts {
  readonly waiting: number;
  readonly failed: number;
}

/**
 * Replays spooled webhooks (inbound SMS, voice call answers, message and call status callbacks),
 * oldest first, through the route's own handling, once at start and every `intervalMs` while the
 * worker runs (at once again after a round that replayed something); each file is removed once handled (handling is idempotent by MessageSid or CallSid,
 * so a file replayed twice after a crash counts once, and a status that is not final does not
 * replace a final one). Every round, Redis up or not, first removes temporary files left by an interrupted
 * write and ends by reporting how many files wait and how many were moved aside.
 */
export function createSpoolReplay(deps: {
  readonly spool: Pick<
    WebhookSpool,
    "list" | "read" | "remove" | "moveAside" | "failedCount" | "removeStaleTemporaries"
  >;
  readonly handle: (entry: SpooledWebhook) => Promise<unknown>;
  /** Whether Redis looks reachable: no round while it does not. */
  readonly redisReady: () => boolean;
  /** Whether a handling error means Redis is away (kept for later) rather than a bad file. */
  readonly isRedisAway: (error: unknown) => boolean;
  /** Told the spool's counts after every round (the spool metric). */
  readonly counted?: (counts: SpoolCounts) => void;
  /** Epoch ms now: a temporary file's age. */
  readonly now?: () => number;
  readonly logger: Logger;
  readonly intervalMs?: number;
  /**
   * Files that could be neither handled nor moved aside (`failed/` cannot be written): left where
   * they are, skipped until the worker restarts, and not counted as waiting (spoolWaiting), so
   * that neither the texts spooled behind them nor the sends held for them wait for ever.
   */
  readonly stuck?: Set<string>;
}) {
  const { spool, logger } = deps;
  const intervalMs = deps.intervalMs ?? SPOOL_REPLAY_INTERVAL_MS;
  const stuck = deps.stuck ?? new Set<string>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> | undefined;

  const aside = async (name: string, reason: string, error?: unknown) => {
    let moved: string;
    try {
      moved = await spool.moveAside(name);
    } catch (moveError) {
      stuck.add(name);
      logger.error(
        { file: name, reason, err: moveError },
        "a spooled webhook cannot be handled, nor moved aside: left in the spool, not replayed again until the worker restarts",
      );
      return;
    }
    logger.error(
      { file: name, movedTo: moved, reason, ...(error !== undefined && { err: error }) },
      "a spooled webhook cannot be handled; moved aside, not replayed again",
    );
  };

  const now = deps.now ?? Date.now;

  const replayAll = async () => {
    const stale = await spool.removeStaleTemporaries(now());
    if (stale.length > 0) {
      logger.warn(
        { removed: stale.length },
        "removed temporary spool files left by an interrupted write (their webhooks were never answered 200)",
      );
    }
    try {
      return deps.redisReady() ? await replaySpooled() : 0;
    } finally {
      if (deps.counted) {
        deps.counted({ waiting: (await spool.list()).length, failed: await spool.failedCount() });
      }
    }
  };

  const replaySpooled = async () => {
    const names = await spool.list();
    let replayed = 0;
    for (const name of names) {
      if (stopped) break;
      if (stuck.has(name)) continue;
      let entry: SpooledWebhook | undefined;
      try {
        entry = await spool.read(name);
      } catch (error) {
        // Gone meanwhile (another round, an operator): nothing to do.
        if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
        await aside(name, "unreadable", error);
        continue;
      }
      if (entry === undefined) {
        await aside(name, "not a spooled webhook");
        continue;
      }
      let outcome: Parameters<typeof replayVerdict>[0];
      let failure: unknown;
      try {
        await deps.handle(entry);
        outcome = { ok: true };
      } catch (error) {
        failure = error;
        outcome = { ok: false, redisAway: deps.isRedisAway(error) };
      }
      const verdict = replayVerdict(outcome);
      if (verdict === "later") break;
      if (verdict === "aside") {
        await aside(name, "handling failed", failure);
        continue;
      }
      await spool.remove(name);
      replayed++;
    }
    if (replayed > 0) logger.info({ replayed }, "replayed spooled webhooks");
    return replayed;
  };

  const tick = () => {
    let replayed = 0;
    round = replayAll()
      .then((count) => {
        replayed = count;
      })
      .catch((error: unknown) => {
        logger.warn({ err: error, dir: "WEBHOOK_SPOOL_DIR" }, "replaying the webhook spool failed");
      })
      .finally(() => {
        // A round that replayed something looks again at once: webhooks that came meanwhile were
        // spooled behind those (an inbound SMS waits its turn), and the spool empties quickly.
        if (!stopped) timer = setTimeout(tick, replayed > 0 ? 0 : intervalMs);
      });
  };

  return {
    /** Replays what a previous run left, then keeps looking every `intervalMs`. */
    start(): void {
      if (!stopped && round === undefined) tick();
    },
    /** Stops; resolves once a round in flight has finished its current file. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await round;
    },
  };
}

export type SpoolReplay = ReturnType<typeof createSpoolReplay>;
