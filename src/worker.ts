import { randomBytes } from "node:crypto";
import { Queue, UnrecoverableError, Worker } from "bullmq";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import type { DeliveryChannel } from "./channels/channel.js";
import { watchConfigDir } from "./config/config-watcher.js";
import { type Env, SECRET_ENV_VARS } from "./config/env.js";
import { type FollowUpConfig, loadConfig } from "./config/load-config.js";
import { formatProblem } from "./config/load-rules.js";
import { type Channel, parseEvent } from "./domain/events.js";
import { findStep, ruleIdOf } from "./domain/step-ref.js";
import type { RuleSet } from "./domain/rules.js";
import { createHttpServer } from "./http/http-server.js";
import type { Logger } from "./logger.js";
import { FollowUpMetrics } from "./metrics.js";
import { createMessageComposer } from "./queue/compose-message.js";
import { createDeliveryProcessor } from "./queue/delivery-processor.js";
import { createIntakeProcessor } from "./queue/intake-processor.js";
import { createLifecycle } from "./queue/lifecycle.js";
import { cappedBackoff } from "./queue/retry-policy.js";
import {
  eventJobId,
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  PURCHASE_EVENTS_QUEUE,
} from "./queue/names.js";
import {
  OWNER_REPORTS_QUEUE,
  ownerSchedulerId,
  sendOwnerReport,
  syncReportSchedulers,
} from "./reports/owner-reports.js";
import { periodFromDates, reportPeriodAt } from "./reports/report-period.js";
import { FollowUpStore, type LedgerEntry } from "./store/follow-up-store.js";
import { FrequencyCapStore } from "./store/frequency-cap-store.js";
import { LedgerReader } from "./store/ledger-reader.js";
import { OrderStore } from "./store/order-store.js";
import { ChannelRateLimiter } from "./store/rate-limiter.js";
import { SuppressionList } from "./store/suppression-list.js";

/** Retention of finished jobs, set once on the workers instead of on every job. */
const KEEP_COMPLETED = { age: 24 * 3600, count: 10_000 };
/**
 * Completed intake jobs hold the whole event (personal data, about 1.5 kB each); our own records
 * make re-publishing safe without them, so only a short window is kept for inspection.
 */
const KEEP_COMPLETED_EVENTS = { age: 3600, count: 1_000 };
const KEEP_FAILED = { age: 30 * 24 * 3600 };
/** A job that stalls (its worker died) this often is failed instead of retried once more. */
const MAX_STALLED_COUNT = 10;
/** Webhook message ids are remembered this long to ignore replays. */
const WEBHOOK_DEDUP_SECONDS = 7 * 24 * 3600;

export interface WorkerHandle {
  /** Current config version (rules+templates hashes). */
  readonly configVersion: () => string;
  /** Where the HTTP server listens (undefined when HTTP_ENABLED=false). */
  readonly httpAddress?: string;
  readonly metrics: FollowUpMetrics;
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
 * Starts the intake and delivery workers and the HTTP server on one Redis. Several processes may
 * run this against the same Redis and prefix; nothing here assumes it is alone.
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
  const rules = () => config.rules;
  const clock = () => DateTime.utc();
  const metrics = new FollowUpMetrics();
  const store = new FollowUpStore(redis, prefix);
  const orders = new OrderStore(redis, prefix);
  const suppressions = new SuppressionList(redis, prefix);
  const followUps = new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  const events = new Queue(PURCHASE_EVENTS_QUEUE, { connection: redis, prefix });
  metrics.trackQueues([events, followUps]);
  const lifecycle = createLifecycle({
    rules,
    store,
    orders,
    suppressions,
    followUps,
    metrics,
    logger,
    firstSighting: async (key) =>
      (await redis.set(`${prefix}:fu:seen:${key}`, "1", "EX", WEBHOOK_DEDUP_SECONDS, "NX")) ===
      "OK",
  });
  const publicUrl = env.PUBLIC_URL ?? `http://localhost:${env.HTTP_PORT}`;
  const unsubscribeSecret =
    env.UNSUBSCRIBE_SECRET ?? (await sharedSecret(redis, prefix, "unsubscribe"));
  const discountSecret = env.DISCOUNT_SECRET ?? (await sharedSecret(redis, prefix, "discount"));

  // Workers block on their own connections; passed-in connections are ours to close.
  const workerConnections = [redis.duplicate(), redis.duplicate(), redis.duplicate()] as const;
  const workerSettings = {
    prefix,
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    lockDuration: env.JOB_LOCK_MS,
    stalledInterval: env.JOB_LOCK_MS,
    maxStalledCount: MAX_STALLED_COUNT,
  };
  const intake = new Worker(
    PURCHASE_EVENTS_QUEUE,
    createIntakeProcessor({
      recordRetentionMs: env.RECORD_RETENTION_DAYS * 86_400_000,
      rules,
      store,
      orders,
      suppressions,
      lifecycle,
      followUps,
      metrics,
      logger,
      clock,
    }),
    {
      ...workerSettings,
      removeOnComplete: KEEP_COMPLETED_EVENTS,
      connection: workerConnections[0],
      concurrency: env.INTAKE_CONCURRENCY,
    },
  );
  const delivery = new Worker<FollowUpJobData>(
    FOLLOW_UPS_QUEUE,
    createDeliveryProcessor({
      rules,
      compose: createMessageComposer(() => config.templates, {
        discountSecret,
        unsubscribe: {
          publicUrl,
          secret: unsubscribeSecret,
          ...(env.UNSUBSCRIBE_MAILTO && { mailto: env.UNSUBSCRIBE_MAILTO }),
        },
      }),
      channels,
      store,
      suppressions,
      caps: new FrequencyCapStore(redis, prefix),
      metrics,
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
    { ...workerSettings, connection: workerConnections[1], concurrency: env.DELIVERY_CONCURRENCY },
  );
  const reportSources = { ledger: new LedgerReader(redis, prefix), store };
  const reports = new Queue(OWNER_REPORTS_QUEUE, { connection: redis, prefix });
  const reportWorker = new Worker(
    OWNER_REPORTS_QUEUE,
    async (job) => {
      const owner = config.rules.owners.find((o) => ownerSchedulerId(o) === job.data.owner);
      if (!owner) return { skipped: "owner no longer in the rules" };
      // A run added by hand may name its period; a scheduled run covers the days before the moment
      // it was scheduled for, even when it is processed late (after an outage, or on a retry).
      const period =
        typeof job.data.since === "string" && typeof job.data.until === "string"
          ? periodFromDates(job.data.since, job.data.until, owner.timezone)
          : reportPeriodAt(owner, DateTime.fromMillis(job.timestamp + (job.delay ?? 0)));
      try {
        const sent = await sendOwnerReport(
          reportSources,
          config.rules,
          owner,
          period,
          channels.email,
          `report-${job.data.owner}-${Date.parse(period.since)}`,
        );
        metrics.reportsSent.inc();
        logger.info(
          { owner: job.data.owner, since: period.since, until: period.until },
          "owner report sent",
        );
        return { id: sent.id };
      } catch (error) {
        metrics.reportsFailed.inc();
        logger.warn(
          { owner: job.data.owner, err: error, attempt: job.attemptsMade + 1 },
          "owner report failed; will retry",
        );
        throw error;
      }
    },
    { ...workerSettings, connection: workerConnections[2], concurrency: 1 },
  );
  await syncReportSchedulers(reports, config.rules.owners);
  delivery.on("failed", (job, error) => {
    // Our own failures are recorded already; this catches jobs BullMQ failed itself (stalled too often).
    if (!job || error instanceof UnrecoverableError) return;
    void store
      .transition(
        job.data.e,
        job.data.s,
        ["scheduled", "sending"],
        { s: "failed", x: `error: ${error.message}` },
        Date.now(),
        failedByBullmq(rules(), job.data.s),
      )
      .catch((err: unknown) =>
        logger.error({ err, jobId: job.id }, "could not record a failed follow-up"),
      );
  });
  for (const queue of [followUps, events, reports]) {
    // Without a listener BullMQ prints connection errors to the console, outside the logger.
    queue.on("error", (error) => logger.error({ err: error, queue: queue.name }, "queue error"));
  }
  for (const [label, worker] of [
    ["intake", intake],
    ["delivery", delivery],
    ["reports", reportWorker],
  ] as const) {
    worker.on("error", (error) => logger.error({ err: error, worker: label }, "worker error"));
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
      logger.info(
        { previousVersion: config.version, version: next.config.version },
        "config reloaded",
      );
      config = next.config;
      await syncReportSchedulers(reports, config.rules.owners);
    }
    return true;
  };
  const reloadLogged = () =>
    reload().catch((error: unknown) => {
      logger.error({ err: error }, "config reload failed; keeping the current version");
      return false;
    });
  const watcher =
    options.watchConfig === false
      ? undefined
      : watchConfigDir(env.CONFIG_DIR, () => void reloadLogged());

  let http: FastifyInstance | undefined;
  let httpAddress: string | undefined;
  if (env.HTTP_ENABLED === "true") {
    http = createHttpServer({
      acceptEvent: async (input) => {
        const parsed = parseEvent(input);
        if (!parsed.ok) return parsed;
        await events.add(parsed.event.type, input, { jobId: eventJobId(parsed.event.id) });
        return { ok: true, eventId: parsed.event.id };
      },
      unsubscribe: (request) =>
        lifecycle.unsubscribe(request.customerId, [request.channel], request.source),
      inboundSms: (message) => lifecycle.inboundSms(message),
      smsStatus: (update) => lifecycle.smsStatus(update),
      readiness: async () => {
        const redisUp = await redis.ping().then(
          (answer) => answer === "PONG",
          () => false,
        );
        const checks = {
          redis: redisUp,
          rules: true,
          workers: intake.isRunning() && delivery.isRunning(),
        };
        return { ready: Object.values(checks).every(Boolean), checks };
      },
      metrics: metrics.registry,
      settings: {
        ...(env.API_TOKEN && { apiToken: env.API_TOKEN }),
        // Only a configured URL: without one, Twilio's signatures cannot be checked (503, not 403).
        ...(env.PUBLIC_URL && { publicUrl: env.PUBLIC_URL }),
        ...(env.TWILIO_AUTH_TOKEN && { twilioAuthToken: env.TWILIO_AUTH_TOKEN }),
        unsubscribeSecret,
        ...(env.SHOP_NAME && { shopName: env.SHOP_NAME }),
        bodyLimitBytes: env.HTTP_BODY_LIMIT,
      },
      logger,
    });
    try {
      httpAddress = await http.listen({ host: env.HTTP_HOST, port: env.HTTP_PORT });
    } catch (error) {
      await Promise.all([intake.close(), delivery.close(), reportWorker.close()]);
      await Promise.all([followUps.close(), events.close(), reports.close()]);
      await Promise.all([redis, ...workerConnections].map((c) => c.quit().catch(() => undefined)));
      throw new StartupError(
        `cannot listen on ${env.HTTP_HOST}:${env.HTTP_PORT}: ${(error as Error).message}`,
      );
    }
  }

  logger.info(
    {
      transports: Object.entries(channels)
        .map(([name, channel]) => `${name}=${channel.transport}`)
        .join(" "),
      queues: {
        input: `${prefix}:${PURCHASE_EVENTS_QUEUE}`,
        followUps: `${prefix}:${FOLLOW_UPS_QUEUE}`,
      },
      http: httpAddress ?? "disabled",
      // Which secrets are configured (names only; values never reach a log).
      secretsSet: SECRET_ENV_VARS.filter((name) => env[name] !== undefined),
      rulesVersion: config.rules.version,
      templatesVersion: config.templates.version,
    },
    "followups worker started",
  );
  if (!env.PUBLIC_URL)
    logger.warn({ publicUrl }, "PUBLIC_URL is not set; unsubscribe links point at localhost");

  let closing: Promise<void> | undefined;
  return {
    configVersion: () => config.version,
    ...(httpAddress && { httpAddress }),
    metrics,
    reload: reloadLogged,
    close() {
      closing ??= (async () => {
        watcher?.close();
        await http?.close();
        const graceful = Promise.all([intake.close(), delivery.close(), reportWorker.close()]);
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
          await Promise.all([intake.close(true), delivery.close(true), reportWorker.close(true)]);
        }
        await Promise.all([followUps.close(), events.close(), reports.close()]);
        await Promise.all(Object.values(channels).map((channel) => channel.close()));
        await Promise.all(
          [redis, ...workerConnections].map((c) => c.quit().catch(() => undefined)),
        );
        logger.info("followups worker stopped");
      })();
      return closing;
    },
  };
}

/** Ledger entry of a job BullMQ failed on its own (e.g. stalled too often). */
function failedByBullmq(rules: RuleSet, stepId: string): LedgerEntry {
  const step = findStep(rules, stepId)?.step;
  return {
    outcome: "failed",
    channel: step?.channel ?? "unknown",
    kind: step?.kind ?? "unknown",
    ruleId: ruleIdOf(stepId),
    reason: "transient stalled",
  };
}

/**
 * A secret used when its variable is not set: random, created once per deployment and shared by
 * every worker through Redis, so codes and links stay stable across processes and restarts.
 */
async function sharedSecret(redis: Redis, prefix: string, name: string): Promise<string> {
  const key = `${prefix}:fu:secret:${name}`;
  await redis.set(key, randomBytes(32).toString("base64url"), "NX");
  return (await redis.get(key)) ?? "";
}
