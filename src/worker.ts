import { Queue, Worker } from "bullmq";
import type { FastifyInstance } from "fastify";
import { Redis, type RedisOptions } from "ioredis";
import { DateTime } from "luxon";
import type { DeliveryChannel } from "./channels/channel.js";
import { unavailableChannelsOf } from "./channels/channels-from-env.js";
import { formatProblem } from "./config/config-files.js";
import { watchConfigDir } from "./config/config-watcher.js";
import { type Env, SECRET_ENV_VARS } from "./config/env.js";
import { type FollowUpConfig, loadConfig } from "./config/load-config.js";
import { eventFingerprint } from "./domain/event-fingerprint.js";
import { type Channel, parseEvent } from "./domain/events.js";
import { UnavailableError } from "./http/http-deps.js";
import { createHttpServer } from "./http/http-server.js";
import type { Logger } from "./logger.js";
import { FollowUpMetrics } from "./metrics.js";
import { EventIdConflictError, EventPublisher, InvalidEventError } from "./publisher.js";
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
import { EventIdRegistry } from "./store/event-ids.js";
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
/**
 * Longest wait for one Redis command on behalf of an HTTP client (enqueueing an event, the
 * readiness ping) when Redis accepted the connection but does not answer.
 */
const HTTP_COMMAND_TIMEOUT_MS = 2_000;
/** /readyz answers within this, Redis or not: orchestrators poll it with short timeouts. */
const READINESS_TIMEOUT_MS = 500;
/** Retry-After of a 503 while Redis is away; ioredis retries the connection every 2 s at most. */
const RETRY_AFTER_SECONDS = 5;
/** Part of SHUTDOWN_TIMEOUT_MS kept for closing queues and connections after in-flight jobs. */
const CLOSE_RESERVE_MS = 1_000;

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
  // HTTP clients are answered from a connection of their own that never waits for Redis: with
  // no offline queue, a command while Redis is away fails at once (503 with Retry-After) instead
  // of queueing until Redis returns; one in flight when the connection drops fails with it, and
  // one Redis does not answer fails after HTTP_COMMAND_TIMEOUT_MS. The other connections keep
  // maxRetriesPerRequest: null (BullMQ's blocking commands need it): jobs wait for Redis instead.
  const httpRedis = await connectRedis(env.REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: HTTP_COMMAND_TIMEOUT_MS,
  });
  httpRedis.on("error", () => {
    // Reported by the other connections' listeners (queue and worker errors); nothing to add.
  });
  const prefix = env.QUEUE_PREFIX;
  const metrics = new FollowUpMetrics();
  const store = new FollowUpStore(redis, prefix);
  const ledger = new DeliveryLedger(redis, prefix);
  const history = new CustomerHistoryStore(redis, prefix);
  const eventIds = new EventIdRegistry(redis, prefix);
  const orders = new OrderStore(redis, prefix);
  const addressHashSecret =
    env.ADDRESS_HASH_SECRET ?? (await sharedSecret(redis, prefix, "address-hash"));
  const suppressions = new SuppressionList(redis, prefix, { addressHashSecret });
  const smsReferences = new SmsReferences(redis, prefix);

  const followUps = new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, { connection: redis, prefix });
  const events = new Queue(PURCHASE_EVENTS_QUEUE, { connection: redis, prefix });
  const reports = new Queue(OWNER_REPORTS_QUEUE, { connection: redis, prefix });
  const publisher = new EventPublisher({ connection: httpRedis, prefix, clock });
  const httpEventIds = new EventIdRegistry(httpRedis, prefix);
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
      eventIds,
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
        addressHashSecret,
        ...(env.UNSUBSCRIBE_MAILTO && { mailto: env.UNSUBSCRIBE_MAILTO }),
      },
    }),
    channels,
    store,
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
    unavailableChannels: unavailableChannelsOf(channels),
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
  const connections = [redis, httpRedis, ...workerConnections];
  // QUIT lets Redis answer what is pending first; a connection that is not up is just dropped
  // (the HTTP one refuses a QUIT while down and would otherwise reconnect forever).
  const closeConnections = async () => {
    await publisher.close();
    await Promise.all([followUps.close(), events.close(), reports.close()]);
    await Promise.all(
      connections.map((c) =>
        c.status === "ready" ? c.quit().catch(() => c.disconnect()) : c.disconnect(),
      ),
    );
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
          // An id the worker has taken before, for other content (its job may be cleaned up
          // already); one still in the queue the publisher tells apart itself.
          const parsed = parseEvent(input, { now: clock() });
          if (
            parsed.ok &&
            (await httpEventIds.conflicts(parsed.event.id, eventFingerprint(parsed.event)))
          ) {
            metrics.eventsIdReused.inc();
            return { ok: false, reusedId: parsed.event.id };
          }
          const { eventId } = await publisher.publish(input as never);
          return { ok: true, eventId };
        } catch (error) {
          if (error instanceof InvalidEventError)
            return { ok: false, problems: [...error.problems] };
          if (error instanceof EventIdConflictError) {
            metrics.eventsIdReused.inc();
            return { ok: false, reusedId: error.eventId };
          }
          // A valid event that could not be stored (Redis away, refusing writes, too slow):
          // the client should send it again, which the event id makes safe even if it was stored.
          throw new UnavailableError("could not enqueue the event", RETRY_AFTER_SECONDS, {
            cause: error,
          });
        }
      },
      unsubscribe: (request) =>
        feedback.unsubscribe(
          request.customerId,
          [request.channel],
          request.source,
          request.addressHash === undefined ? undefined : { addressHash: request.addressHash },
          request.scope,
        ),
      inboundSms: (message) => feedback.inboundSms(message),
      smsStatus: (update) => feedback.smsStatus(update),
      readiness: async () => {
        // The job connection's state is known without asking; the ping (on the connection that
        // never waits) proves Redis answers now. Bounded, so a silent Redis still gets a 503.
        const pong = httpRedis.ping().then(
          (answer) => answer === "PONG",
          () => false,
        );
        const redisUp =
          redis.status === "ready" &&
          (await settlesWithin(pong, READINESS_TIMEOUT_MS)) &&
          (await pong);
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
      // Every step is bounded by what is left of SHUTDOWN_TIMEOUT_MS: with Redis away, closing
      // a worker or quitting a connection waits for Redis forever. What has not finished when
      // the time is up is cut off: connections are dropped (disconnect), which ends the process.
      closing ??= (async () => {
        const startedAt = Date.now();
        const deadline = startedAt + env.SHUTDOWN_TIMEOUT_MS;
        const left = (reserveMs = 0) => Math.max(0, deadline - reserveMs - Date.now());
        const reserveMs = Math.min(CLOSE_RESERVE_MS, env.SHUTDOWN_TIMEOUT_MS / 4);
        watcher?.close();
        // Stops listening at once; requests in flight finish while the workers stop.
        const httpClosed = http ? settlesWithin(http.close(), left(reserveMs)) : true;
        // Jobs in flight may finish while Redis is up; with Redis away (or once it goes) they
        // cannot record their outcome, so they are cut off (their locks run out, another worker
        // retries them). Forced from the start when Redis is already away: BullMQ ignores a
        // force once a graceful close has begun.
        let outcome: "drained" | "redis lost" | "timed out" = "redis lost";
        if (redis.status === "ready") {
          let onRedisClose = () => {};
          const redisLost = new Promise<"redis lost">((resolve) => {
            onRedisClose = () => resolve("redis lost");
            redis.once("close", onRedisClose);
          });
          const drained = closeWorkers().then(
            () => "drained" as const,
            () => "drained" as const,
          );
          outcome = await firstWithin([drained, redisLost], left(reserveMs), "timed out");
          redis.off("close", onRedisClose);
        }
        if (outcome !== "drained") {
          logger.warn(
            { waitedMs: Date.now() - startedAt, redis: redis.status },
            outcome === "timed out"
              ? "in-flight jobs did not finish in time; forcing close"
              : "Redis is unreachable; not waiting for in-flight jobs",
          );
          // BullMQ keeps waiting for the jobs if a graceful close began: half the reserve at most.
          await settlesWithin(closeWorkers(true), left(reserveMs / 2));
        }
        if (http && !(await httpClosed)) {
          // A request waiting on Redis (a webhook) would hold its socket, and the process, open.
          logger.warn("HTTP requests did not finish in time; closing their connections");
          http.server.closeAllConnections();
        }
        if (!(await settlesWithin(closeConnections(), left()))) {
          logger.warn(
            { timeoutMs: env.SHUTDOWN_TIMEOUT_MS, redis: redis.status },
            "Redis did not answer in time; dropping its connections",
          );
          for (const connection of connections) connection.disconnect();
        }
        const channelsClosed = Promise.all(Object.values(channels).map((c) => c.close()));
        if (!(await settlesWithin(channelsClosed, left())))
          logger.warn("channels did not close in time; leaving them");
        logger.info({ ms: Date.now() - startedAt }, "followups worker stopped");
      })();
      return closing;
    },
  };
}

/** The first of `outcomes` to resolve, or `fallback` after `ms`; the others go on. */
async function firstWithin<T, F>(outcomes: Promise<T>[], ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(resolve, ms, fallback);
  });
  try {
    return await Promise.race([...outcomes, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `work` settles (either way) within `ms`; if not, it goes on in the background. */
function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = work.then(
    () => true,
    () => true,
  );
  return firstWithin([settled], ms, false);
}

/**
 * A connection for commands (BullMQ's workers get duplicates of it); by default a command waits
 * while Redis is away, as BullMQ requires.
 */
async function connectRedis(url: string, options: RedisOptions = {}): Promise<Redis> {
  const redis = new Redis(url, { maxRetriesPerRequest: null, ...options, lazyConnect: true });
  try {
    await redis.connect();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new StartupError(`cannot reach Redis at REDIS_URL: ${(error as Error).message}`);
  }
}
