import { randomBytes } from "node:crypto";
import { Queue, UnrecoverableError, Worker } from "bullmq";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import type { DeliveryChannel } from "./channels/channel.js";
import { watchConfigDir } from "./config/config-watcher.js";
import type { Env } from "./config/env.js";
import { type FollowUpConfig, loadConfig } from "./config/load-config.js";
import { formatProblem } from "./config/load-rules.js";
import type { Channel } from "./domain/events.js";
import type { Logger } from "./logger.js";
import { createMessageComposer } from "./queue/compose-message.js";
import { cappedBackoff, createDeliveryProcessor } from "./queue/delivery-processor.js";
import { createIntakeProcessor } from "./queue/intake-processor.js";
import { FOLLOW_UPS_QUEUE, type FollowUpJobData, PURCHASE_EVENTS_QUEUE } from "./queue/names.js";
import { FollowUpStore } from "./store/follow-up-store.js";
import { ChannelRateLimiter } from "./store/rate-limiter.js";
import { SuppressionList } from "./store/suppression-list.js";

/** Retention of finished jobs, set once on the workers instead of on every job. */
const KEEP_COMPLETED = { age: 24 * 3600, count: 10_000 };
const KEEP_FAILED = { age: 30 * 24 * 3600 };
/** A job that stalls (its worker died) this often is failed instead of retried once more. */
const MAX_STALLED_COUNT = 10;

export interface WorkerHandle {
  /** Current config version (rules+templates hashes). */
  readonly configVersion: () => string;
  /** Re-reads the config directory; keeps the previous version if the new one is invalid. */
  reload(): Promise<boolean>;
  /** Stops taking jobs, waits (bounded) for in-flight sends, closes every connection. */
  close(): Promise<void>;
}

export interface WorkerOptions {
  readonly env: Env;
  readonly logger: Logger;
  readonly channels: Readonly<Record<Channel, DeliveryChannel>>;
  /** Watch the config directory for edits (default true). */
  readonly watchConfig?: boolean;
}

/** Thrown when the worker cannot start; the message is for the operator. */
export class StartupError extends Error {}

/**
 * Starts the intake and delivery workers on one Redis. Several processes may run this against
 * the same Redis and prefix; nothing here assumes it is alone.
 */
export async function startWorker(options: WorkerOptions): Promise<WorkerHandle> {
  const { env, logger, channels } = options;
  const loaded = await loadConfig(env.CONFIG_DIR);
  if (!loaded.ok) {
    throw new StartupError(`invalid config:\n${loaded.problems.map(formatProblem).join("\n")}`);
  }
  let config: FollowUpConfig = loaded.config;

  const redis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: null, lazyConnect: true });
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new StartupError(`cannot reach Redis at REDIS_URL: ${(error as Error).message}`);
  }
  const prefix = env.QUEUE_PREFIX;
  const store = new FollowUpStore(redis, prefix);
  const discountSecret = env.DISCOUNT_SECRET ?? (await sharedDiscountSecret(redis, prefix));
  const followUps = new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  const clock = () => DateTime.utc();
  // Workers block on their own connections; passed-in connections are ours to close.
  const workerConnections = [redis.duplicate(), redis.duplicate()] as const;

  const intake = new Worker(
    PURCHASE_EVENTS_QUEUE,
    createIntakeProcessor({ rules: () => config.rules, store, followUps, logger, clock }),
    {
      connection: workerConnections[0],
      prefix,
      concurrency: env.INTAKE_CONCURRENCY,
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
      lockDuration: env.JOB_LOCK_MS,
      stalledInterval: env.JOB_LOCK_MS,
      maxStalledCount: MAX_STALLED_COUNT,
    },
  );
  const delivery = new Worker<FollowUpJobData>(
    FOLLOW_UPS_QUEUE,
    createDeliveryProcessor({
      rules: () => config.rules,
      compose: createMessageComposer(() => config.templates, discountSecret),
      channels,
      store,
      suppressions: new SuppressionList(redis, prefix),
      rateLimiter: new ChannelRateLimiter(redis, prefix),
      retry: {
        maxAttempts: env.DELIVERY_ATTEMPTS,
        delayMs: cappedBackoff(env.DELIVERY_RETRY_BASE_MS, env.DELIVERY_RETRY_MAX_MS, Math.random),
      },
      sendLeaseMs: env.DELIVERY_LEASE_MS,
      logger,
      clock,
      random: Math.random,
    }),
    {
      connection: workerConnections[1],
      prefix,
      concurrency: env.DELIVERY_CONCURRENCY,
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
      lockDuration: env.JOB_LOCK_MS,
      stalledInterval: env.JOB_LOCK_MS,
      maxStalledCount: MAX_STALLED_COUNT,
    },
  );
  delivery.on("failed", (job, error) => {
    // Our own failures are recorded already; this catches jobs BullMQ failed itself (stalled too often).
    if (!job || error instanceof UnrecoverableError) return;
    const reason = `error: ${error.message}`;
    void store
      .transition(
        job.data.e,
        job.data.s,
        ["scheduled", "sending"],
        { s: "failed", x: reason },
        Date.now(),
      )
      .catch((err: unknown) =>
        logger.error({ err, jobId: job.id }, "could not record a failed follow-up"),
      );
  });
  for (const [label, worker] of [
    ["intake", intake],
    ["delivery", delivery],
  ] as const) {
    worker.on("error", (error) => logger.error({ err: error, worker: label }, "worker error"));
    worker.on("failed", (job, error) => {
      if (job && label === "intake")
        logger.warn({ jobId: job.id, reason: error.message.split(":")[0] }, "event failed");
    });
  }

  const reload = async (): Promise<boolean> => {
    const next = await loadConfig(env.CONFIG_DIR);
    if (!next.ok) {
      for (const problem of next.problems)
        logger.error({ problem: formatProblem(problem) }, "config edit rejected");
      logger.error({ kept: config.version }, "invalid config edit; keeping the previous version");
      return false;
    }
    if (next.config.version !== config.version) {
      logger.info({ from: config.version, to: next.config.version }, "config reloaded");
      config = next.config;
    }
    return true;
  };
  const watcher =
    options.watchConfig === false ? undefined : watchConfigDir(env.CONFIG_DIR, () => void reload());

  logger.info(
    {
      transports: Object.entries(channels)
        .map(([name, channel]) => `${name}=${channel.transport}`)
        .join(" "),
      queues: {
        input: `${prefix}:${PURCHASE_EVENTS_QUEUE}`,
        followUps: `${prefix}:${FOLLOW_UPS_QUEUE}`,
      },
      rulesVersion: config.rules.version,
      templatesVersion: config.templates.version,
    },
    "followups worker started",
  );

  let closing: Promise<void> | undefined;
  return {
    configVersion: () => config.version,
    reload,
    close() {
      closing ??= (async () => {
        watcher?.close();
        const graceful = Promise.all([intake.close(), delivery.close()]);
        const timedOut = await Promise.race([
          graceful.then(() => false),
          new Promise<boolean>((resolve) =>
            setTimeout(resolve, env.SHUTDOWN_TIMEOUT_MS, true).unref(),
          ),
        ]);
        if (timedOut) {
          logger.warn(
            { waitedMs: env.SHUTDOWN_TIMEOUT_MS },
            "in-flight jobs did not finish in time; forcing close",
          );
          await Promise.all([intake.close(true), delivery.close(true)]);
        }
        await followUps.close();
        await Promise.all(Object.values(channels).map((channel) => channel.close()));
        await Promise.all(
          [redis, ...workerConnections].map((connection) =>
            connection.quit().catch(() => undefined),
          ),
        );
        logger.info("followups worker stopped");
      })();
      return closing;
    },
  };
}

/**
 * The discount-code secret when DISCOUNT_SECRET is not set: random, created once per deployment
 * and shared by every worker through Redis, so codes stay stable and unguessable.
 */
async function sharedDiscountSecret(redis: Redis, prefix: string): Promise<string> {
  const key = `${prefix}:fu:discount-secret`;
  await redis.set(key, randomBytes(32).toString("base64url"), "NX");
  return (await redis.get(key)) ?? "";
}
