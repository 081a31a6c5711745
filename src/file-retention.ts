import { removeExpiredOutboxFiles } from "./channels/outbox.js";
import type { WebhookSpool } from "./http/webhook-spool.js";
import type { Logger } from "./logger.js";
import { type Periodic, periodic } from "./queue/periodic.js";

/**
 * The worker's folders that hold personal data expire their files by age, however quiet the
 * shop: the outbox's messages (OUTBOX_DIR: names, addresses, texts; owners' reports and alerts)
 * `outboxMaxAgeMs` after each was written, and the webhooks the spool moved aside to `failed/`
 * (WEBHOOK_SPOOL_DIR: numbers, texts) `failedMaxAgeMs` after each was moved there, but for an
 * opt-out not acted on, which is kept until an operator acts (only handling it opts the number
 * out). At start and every hour, in the background: a send never waits for it.
 */

/** How often the folders are looked at while the worker runs. */
export const FILE_RETENTION_EVERY_MS = 60 * 60_000;

export interface FileRetentionDeps {
  readonly outboxDir: string;
  /** RECORD_RETENTION_DAYS: an outbox file lives no longer than the record of its message. */
  readonly outboxMaxAgeMs: number;
  readonly spool: Pick<WebhookSpool, "removeExpiredFailed">;
  /** As failed jobs: 30 days after the webhook was moved aside. */
  readonly failedMaxAgeMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  readonly firstMs?: number;
  readonly everyMs?: number;
}

export interface FileRetention {
  /** One round now: how many files went, and how many expired opt-outs were kept. */
  sweep(): Promise<{ outbox: number; failed: number; optOutsKept: number }>;
  start(): void;
  stop(): Promise<void>;
}

export function createFileRetention(deps: FileRetentionDeps): FileRetention {
  let task: Periodic | undefined;
  const sweep = async () => {
    const now = deps.now();
    // A round is left between two files when the worker stops (a large folder takes long).
    const stopped = () => task?.stopped() ?? false;
    const outbox = await removeExpiredOutboxFiles(
      deps.outboxDir,
      now,
      deps.outboxMaxAgeMs,
      stopped,
    ).catch((error: unknown) => {
      deps.logger.warn(
        { err: error, dir: "OUTBOX_DIR" },
        "could not remove outbox files past their age",
      );
      return 0;
    });
    const spool = await deps.spool
      .removeExpiredFailed(now, deps.failedMaxAgeMs, stopped)
      .catch((error: unknown) => {
        deps.logger.warn(
          { err: error, dir: "WEBHOOK_SPOOL_DIR" },
          "could not remove failed spooled webhooks past their age",
        );
        return { removed: 0, optOutsKept: 0 };
      });
    if (outbox > 0) deps.logger.info({ removed: outbox }, "outbox files past their age removed");
    if (spool.removed > 0)
      deps.logger.info(
        { removed: spool.removed },
        "failed spooled webhooks past their age removed from failed/",
      );
    if (spool.optOutsKept > 0)
      deps.logger.warn(
        { kept: spool.optOutsKept },
        "failed spooled opt-outs past their age kept in failed/: move each back into the spool once its cause is fixed",
      );
    return { outbox, failed: spool.removed, optOutsKept: spool.optOutsKept };
  };
  task = periodic({
    firstMs: deps.firstMs ?? 0,
    everyMs: deps.everyMs ?? FILE_RETENTION_EVERY_MS,
    run: async () => {
      await sweep();
    },
    failed: (error) => deps.logger.warn({ err: error }, "could not expire files by age"),
  });
  return { sweep, start: task.start, stop: task.stop };
}
