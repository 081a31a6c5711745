import { Queue, Worker } from "bullmq";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { DateTime } from "luxon";
import type { DeliveryChannel } from "./channels/channel.js";
import { formatProblem } from "./config/config-files.js";
import { watchConfigDir } from "./config/config-watcher.js";
import { type Env, SECRET_ENV_VARS } from "./config/env.js";
import { type FollowUpConfig, loadConfig } from "./config/load-config.js";
import type { Channel } from "./domain/events.js";
import { createHttpServer } from "./http/http-server.js";
import type { Logger } from "./logger.js";
import { FollowUpMetrics } from "./metrics.js";
import { EventPublisher, InvalidEventError } from "./publisher.js";
import { recordFailureByBullmq } from "./queue/bullmq-failures.js";
import { createCustomerFeedback } from "./queue/customer-feedback.js";
import { createDeliveryProcessor } from "./queue/delivery-processor.js";
import { createIntakeProcessor } from "./queue/intake-processor.js";
import {
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  OWNER_REPORTS_QUEUE,
  PURCHASE_EVENTS_QUEUE,
} from "./queue/names.js";
import { createRefunds } from "./queue/refunds.js";
import { cappedBackoff } from "./queue/retry-policy.js";
import { createOwnerReportProcessor } from "./reports/owner-report-processor.js";
import { reportSourcesOn, syncReportSchedulers } from "./reports/owner-reports.js";
import { CustomerHistoryStore } from "./store/customer-history.js";
import { DeliveryLedger } from "./store/delivery-ledger.js";
import { FollowUpStore } from "./store/follow-up-store.js";
import { FrequencyCapStore } from "./store/frequency-cap-store.js";
import { OrderStore } from "./store/order-store.js";
import { ChannelRateLimiter } from "./store/rate-limiter.js";
import { sharedSecret } from "./store/shared-secrets.js";
import { SmsReferences } from "./store/sms-references.js";
import { SuppressionList } from "./store/suppression-list.js";
import { WebhookReceipts } from "./store/webhook-receipts.js";
import { createMessageComposer } from "./templates/compose-message.js";

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
 * The composition root: wires config, Redis, stores, processors, queues and the HTTP server, and
 * closes them in order. Several processes may run this against the same Redis and prefix; nothing
 * here assumes it is alone.
 */
export async function startWorker(options: WorkerOptions): Promise<WorkerHandle> {
  const { env, logger, channels } = options;
  const loaded = await loadConfig(env.CONFIG_DIR);
  if (!loaded.ok) {
    throw new StartupError(`invalid config:\n${loaded.problems.map(formatProblem).join("\n")}`);
  }
  let config: FollowUpConfig = loaded.config;
  const rules = () => config.rules;
  const clock = () => DateTime.utc();
  const now = () => clock().toMillis();

  const redis = await connectRedis(env.REDIS_URL);
  const prefix = env.QUEUE_PREFIX;
  const metrics = new FollowUpMetrics();
  const store = new FollowUpStore(redis, prefix);
  const ledger = new DeliveryLedger(redis, prefix);
  const history = new CustomerHistoryStore(redis, prefix);
  const orders = new OrderStore(redis, prefix);
  const suppressions = new SuppressionList(redis, prefix);
  const smsReferences = new SmsReferences(redis, prefix);

  const followUps = new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  const events = new Queue(PURCHASE_EVENTS_QUEUE, { connection: redis, prefix });
  const reports = new Queue(OWNER_REPORTS_QUEUE, { connection: redis, prefix });
  const publisher = new EventPublisher({ connection: redis, prefix });
  metrics.trackQueues([events, followUps]);

  const refunds = createRefunds({ rules, store, history, orders, followUps, metrics, logger });
  const feedback = createCustomerFeedback({
    rules,
    store,
    ledger,
    smsReferences,
    suppressions,
    receipts: new WebhookReceipts(redis, prefix),
    logger,
    now,
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
      history,
      ledger,
      orders,
      suppressions,
      refunds,
      feedback,
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
  const deliveryDeps = {
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
    ledger,
    smsReferences,
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
  };
  const delivery = new Worker<FollowUpJobData>(
    FOLLOW_UPS_QUEUE,
    createDeliveryProcessor(deliveryDeps),
    { ...workerSettings, connection: workerConnections[1], concurrency: env.DELIVERY_CONCURRENCY },
  );
  delivery.on("failed", recordFailureByBullmq(deliveryDeps));
  const reportWorker = new Worker(
    OWNER_REPORTS_QUEUE,
    createOwnerReportProcessor({
      rules,
      sources: reportSourcesOn(redis, prefix),
      email: channels.email,
      metrics,
      logger,
    }),
    { ...workerSettings, connection: workerConnections[2], concurrency: 1 },
  );
  await syncReportSchedulers(reports, config.rules.owners);
  for (const queue of [followUps, events, reports]) {
    // Without a listener BullMQ prints connection errors to the console, outside the logger.
    queue.on("error", (error) => logger.error({ err: error, queue: queue.name }, "queue error"));
  }
  const workers = { intake, delivery, reports: reportWorker };
  for (const [label, worker] of Object.entries(workers)) {
    worker.on("error", (error) => logger.error({ err: error, worker: label }, "worker error"));
  }
  const closeWorkers = (force = false) =>
    Promise.all(Object.values(workers).map((worker) => worker.close(force)));
  const closeConnections = async () => {
    await publisher.close();
    await Promise.all([followUps.close(), events.close(), reports.close()]);
    await Promise.all([redis, ...workerConnections].map((c) => c.quit().catch(() => undefined)));
  };

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
        try {
          const { eventId } = await publisher.publish(input as never);
          return { ok: true, eventId };
        } catch (error) {
          if (error instanceof InvalidEventError)
            return { ok: false, problems: [...error.problems] };
          throw error;
        }
      },
      unsubscribe: (request) =>
        feedback.unsubscribe(request.customerId, [request.channel], request.source),
      inboundSms: (message) => feedback.inboundSms(message),
      smsStatus: (update) => feedback.smsStatus(update),
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
      watcher?.close();
      await closeWorkers();
      await closeConnections();
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
        const timedOut = await Promise.race([
          closeWorkers().then(() => false),
          new Promise<boolean>((resolve) =>
            setTimeout(resolve, env.SHUTDOWN_TIMEOUT_MS, true).unref(),
          ),
        ]);
        if (timedOut) {
          logger.warn(
            { waitedMs: env.SHUTDOWN_TIMEOUT_MS },
            "in-flight jobs did not finish in time; forcing close",
          );
          await closeWorkers(true);
        }
        await closeConnections();
        await Promise.all(Object.values(channels).map((channel) => channel.close()));
        logger.info("followups worker stopped");
      })();
      return closing;
    },
  };
}

/** One connection for commands; BullMQ's workers get duplicates of it. */
async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
  try {
    await redis.connect();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new StartupError(`cannot reach Redis at REDIS_URL: ${(error as Error).message}`);
  }
}
