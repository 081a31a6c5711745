import { type Job, Queue, Worker } from "bullmq";
import type { FastifyInstance } from "fastify";
import { DateTime } from "luxon";
import type { DeliveryChannel } from "./channels/channel.js";
import { unavailableChannelsOf } from "./channels/channels-from-env.js";
import { outboxWriteProblem } from "./channels/outbox.js";
import { formatProblem } from "./config/config-files.js";
import { watchConfigDir } from "./config/config-watcher.js";
import { type Env, SECRET_ENV_VARS } from "./config/env.js";
import { type FollowUpConfig, loadConfig } from "./config/load-config.js";
import { DEFAULT_SHOP_NAME } from "./config/rules-file.js";
import { marketingEmailLinkProblem } from "./config/startup-checks.js";
import { registerConsole } from "./console/console-routes.js";
import { redemptionLabel } from "./domain/discount-code.js";
import type { Channel } from "./domain/events.js";
import type { RuleSet } from "./domain/rules.js";
import { parseServedShards } from "./domain/shard-spec.js";
import { type BudgetAlert, MICROS, PRICED_CHANNELS, spendMonthOf } from "./domain/spend.js";
import { createFileRetention } from "./file-retention.js";
import { UnavailableError } from "./http/http-deps.js";
import { createHttpServer } from "./http/http-server.js";
import { listeningOn } from "./http/listening-on.js";
import { answerMethodNotAllowed } from "./http/method-not-allowed.js";
import { createSpoolReplay } from "./http/spool-replay.js";
import {
  FAILED_WEBHOOK_MAX_AGE_MS,
  handleSpooled,
  type SpooledInput,
  type SpooledWebhook,
  WebhookSpool,
} from "./http/webhook-spool.js";
import {
  acceptEventWith,
  adminApiWith,
  failFast,
  hangUpWhenUnavailable,
  readinessWith,
  spoolCallStatusWhenUnavailable,
  spoolGatherWhenUnavailable,
  spoolSmsStatusWhenUnavailable,
  spoolUnsubscribeWhenUnavailable,
  spoolWhenUnavailable,
} from "./http-bindings.js";
import type { Logger } from "./logger.js";
import { FollowUpMetrics } from "./metrics.js";
import { createOperatorTools } from "./operations/operator-tools.js";
import { previewStep } from "./operations/preview-step.js";
import { EventPublisher } from "./publisher.js";
import { leaveFailedJobToJobWatch, recordStalledTooOften } from "./queue/bullmq-failures.js";
import { createCustomerFeedback } from "./queue/customer-feedback.js";
import { createDeliveryProcessor } from "./queue/delivery-processor.js";
import { createFinishedJobsSweeper } from "./queue/finished-jobs.js";
import { createIntakeProcessor, HISTORY_RETENTION_MS } from "./queue/intake-processor.js";
import { IntakeWorker } from "./queue/intake-worker.js";
import { KEEP_COMPLETED, KEEP_COMPLETED_EVENTS, KEEP_FAILED } from "./queue/job-retention.js";
import { watchStepsOfEarlierVersions } from "./queue/job-watch-upgrade.js";
import { createLostJobs, lostJobMarginMs } from "./queue/lost-jobs.js";
import {
  BUDGET_ALERT_JOB,
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  OWNER_ALERTS_QUEUE,
  OWNER_REPORTS_QUEUE,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
} from "./queue/names.js";
import { createPackedIndexSweeper } from "./queue/packed-index-sweeper.js";
import { periodic } from "./queue/periodic.js";
import { createPromoter } from "./queue/promoter.js";
import { logRedisAway, reportConnectionErrors, watchRedisAnswers } from "./queue/redis-away-log.js";
import { createRefunds } from "./queue/refunds.js";
import { createReplanner } from "./queue/replanner.js";
import { cappedBackoff } from "./queue/retry-policy.js";
import { moveDelayedJobsToSchedule } from "./queue/schedule-upgrade.js";
import { createShardCoverageWatch } from "./queue/shard-coverage.js";
import { createVoiceCalls } from "./queue/voice-calls.js";
import { pauseOnWriteRefusal } from "./queue/write-refusal-pause.js";
import {
  connectHttpRedis,
  connectRedis,
  connectWebhookRedis,
  HTTP_COMMAND_TIMEOUT_MS,
} from "./redis-connections.js";
import { createBudgetAlertProcessor, queueBudgetAlerts } from "./reports/budget-alerts.js";
import { createOwnerAlertProcessor, createOwnerAlerts } from "./reports/owner-alerts.js";
import { createOwnerReportProcessor } from "./reports/owner-report-processor.js";
import {
  REPORT_QUEUE_SETTINGS,
  reportSourcesOn,
  syncReportSchedulers,
} from "./reports/owner-reports.js";
import { closeWithin } from "./shutdown.js";
import { StartupError, StartupStopped } from "./startup-error.js";
import { CallScripts } from "./store/call-scripts.js";
import { ConsoleSessions } from "./store/console-sessions.js";
import { CustomerIndex } from "./store/customer-index.js";
import { DiscountCodes } from "./store/discount-codes.js";
import { DeploymentEventIds } from "./store/event-ids.js";
import {
  FormerOperationUnfinished,
  KEY_LAYOUT,
  OlderWorkersRunning,
  upgradeKeyLayout,
} from "./store/key-layout.js";
import { HTTP_ANNOUNCE_MS, StoreKeys } from "./store/keys.js";
import { OrderStore } from "./store/order-store.js";
import { OwnerAlertQueue } from "./store/owner-alerts.js";
import { ChannelRateLimiter } from "./store/rate-limiter.js";
import { duplicateClient, isRedisUnavailable, type RedisClient } from "./store/redis-client.js";
import { ReplicaWait, type ShortWait } from "./store/replica-wait.js";
import { ReportMarks } from "./store/report-marks.js";
import { RulesGenerations } from "./store/rules-generations.js";
import { claimShardCount, Shards, shardStores, startRefusal } from "./store/shards.js";
import { sharedSecret } from "./store/shared-secrets.js";
import { SmsReferences } from "./store/sms-references.js";
import { SpendLedger } from "./store/spend-ledger.js";
import { SuppressionList } from "./store/suppression-list.js";
import { WebhookReceipts } from "./store/webhook-receipts.js";
import { createMessageComposer } from "./templates/compose-message.js";
import type { Tracing } from "./tracing.js";

/** A job that stalls (its worker died) this often is failed instead of retried once more. */
const MAX_STALLED_COUNT = 10;
/** How often a worker re-plans the purchases filed under older rules after a walk began. */
const REPLAN_LATER_EVERY_MS = 30_000;
/** The first wait before a failed re-planning walk is tried again; it doubles each time, to the max. */
const REPLAN_RETRY_MS = 1_000;
const REPLAN_RETRY_MAX_MS = 300_000;

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
  /**
   * Traces of intake and delivery (createTracing; tests hand in a tracer of their own), shut down
   * when the worker closes. None when absent or without a tracer.
   */
  readonly tracing?: Tracing;
  /**
   * Aborted by a SIGTERM or SIGINT while the worker starts: start-up stops where it is, drops the
   * connections it opened and rejects with StartupStopped. Once the workers are connected and
   * checked it is no longer read: startWorker returns, and the caller closes the handle.
   */
  readonly stop?: AbortSignal;
}

export { StartupError, StartupStopped };

/**
 * The composition root: wires config, Redis, stores, processors, queues and the HTTP server, and
 * closes them in order. Several processes may run this against the same Redis and prefix; nothing
 * here assumes it is alone.
 */
export async function startWorker(options: WorkerOptions): Promise<WorkerHandle> {
  const { stop } = options;
  // Until the workers are checked, a stop drops every connection opened so far: a wait on Redis
  // (one that does not answer, another worker's key layout upgrade) fails at once, and the
  // start-up ends with StartupStopped (stoppedOr below) instead of its error.
  const opened: RedisClient[] = [];
  const dropOpened = () => {
    for (const connection of opened) connection.disconnect();
  };
  stop?.addEventListener("abort", dropOpened, { once: true });
  const stoppedOr = (error: unknown) => (stop?.aborted ? new StartupStopped() : error);
  try {
    return await startWorkerWith(options, opened, stoppedOr, () =>
      stop?.removeEventListener("abort", dropOpened),
    );
  } catch (error) {
    dropOpened();
    throw stoppedOr(error);
  } finally {
    stop?.removeEventListener("abort", dropOpened);
  }
}

async function startWorkerWith(
  options: WorkerOptions,
  opened: RedisClient[],
  stoppedOr: (error: unknown) => unknown,
  /** From here on a stop no longer drops the connections: the caller closes the handle. */
  checked: () => void,
): Promise<WorkerHandle> {
  const { env, logger, channels, stop } = options;
  const loaded = await loadConfig(env.CONFIG_DIR);
  if (stop?.aborted) throw new StartupStopped();
  if (!loaded.ok) {
    throw new StartupError(`invalid config:\n${loaded.problems.map(formatProblem).join("\n")}`);
  }
  let config: FollowUpConfig = loaded.config;
  // Marketing emails need working unsubscribe links: refused while real email goes out.
  const realEmail = channels.email.transport !== "outbox";
  const linkProblem = (rules: RuleSet) => marketingEmailLinkProblem(rules, env.PUBLIC_URL);
  const startProblem = linkProblem(config.rules);
  if (startProblem && realEmail) throw new StartupError(startProblem);
  if (startProblem) logger.warn({ problem: startProblem }, "unsubscribe links will not work");
  // A folder the outbox cannot write to is said now, not when the first message is due.
  if (Object.values(channels).some((channel) => channel.transport === "outbox")) {
    const outboxProblem = await outboxWriteProblem(env.OUTBOX_DIR);
    if (outboxProblem) throw new StartupError(outboxProblem);
    if (stop?.aborted) throw new StartupStopped();
  }
  const rules = () => config.rules;
  // DateTime.utc(), at half its cost (read a few times per event).
  const clock = () => DateTime.fromMillis(Date.now(), { zone: "utc" });
  // The same clock as epoch ms, without building a DateTime (several reads per event).
  const now = () => Date.now();
  // Loaded only with a tracer: with tracing off, no OpenTelemetry code runs.
  const tracer = options.tracing?.tracer;

  const redis = await connectRedis(
    env.REDIS_URL,
    env.REDIS_CLUSTER,
    {},
    () =>
      logger.warn(
        `Redis at REDIS_URL has not answered yet (stopped, overloaded, loading its data, or a cluster not ready${
          env.REDIS_URL.trim().startsWith("rediss:")
            ? "; or the URL asks for TLS with rediss:// of a port that does not serve TLS"
            : ""
        }): waiting for it`,
      ),
    stop,
  );
  opened.push(redis);
  // When Redis last became ready: a call's outcome spooled while it was away comes within
  // seconds of this (decideFallback waits that long before taking it as never coming).
  let redisReadySince = now();
  // Connection errors while Redis is away: one line as it goes, a sum a minute, one as it is back.
  const redisAway = logRedisAway({ logger, now });
  // Every connection reports its errors itself for its whole life: BullMQ's queues and workers
  // stop listening on a connection when they close, and ioredis prints what nobody hears.
  const reportErrors = (connection: RedisClient, name: string) =>
    reportConnectionErrors({
      redis: connection,
      away: redisAway,
      logger,
      now,
      source: { connection: name },
    });
  reportErrors(redis, "main");
  // Without a listener BullMQ prints connection errors to the console, outside the logger.
  const reportQueueErrors = (queue: Queue) =>
    queue.on("error", (error) => {
      if (!redisAway.handle(error, { queue: queue.name }))
        logger.error({ err: error, queue: queue.name }, "queue error");
    });
  redis.on("ready", () => {
    redisReadySince = now();
    redisAway.back();
  });
  const httpRedis = await connectHttpRedis(env.REDIS_URL, env.REDIS_CLUSTER, stop);
  opened.push(httpRedis);
  reportErrors(httpRedis, "http");
  const prefix = env.QUEUE_PREFIX;
  // On a Redis Cluster each queue's keys carry a hash tag (queuePrefix).
  const prefixOf = (queue: string) => queuePrefix(prefix, queue, env.REDIS_CLUSTER);
  // Not while a reshard or a move to another Redis is under way, nor on a Redis moved away from.
  const refusal = await startRefusal(redis, prefix);
  if (refusal) {
    redis.disconnect();
    httpRedis.disconnect();
    throw new StartupError(refusal);
  }
  // Before anything reads or writes state: keys written by versions before December 2026 move
  // to their names of the current layout (once per deployment; other workers wait for it).
  const olderWorkers = async () => {
    const queues = [PURCHASE_EVENTS_QUEUE, FOLLOW_UPS_QUEUE].map(
      (name) => new Queue(name, { connection: redis, prefix: prefixOf(name) }),
    );
    for (const queue of queues) reportQueueErrors(queue);
    try {
      const counts = await Promise.all(queues.map((queue) => queue.getWorkersCount()));
      return counts.reduce((sum, count) => sum + count, 0);
    } finally {
      await Promise.all(queues.map((queue) => queue.close()));
    }
  };
  const layout = await upgradeKeyLayout(redis, prefix, {
    olderWorkers,
    onWaiting: () => logger.info("waiting for another worker to finish the key layout upgrade"),
    onProgress: (renamed) => logger.info({ renamed }, "renaming store keys to the new layout"),
  }).catch((error: unknown) => {
    redis.disconnect();
    httpRedis.disconnect();
    throw error instanceof OlderWorkersRunning || error instanceof FormerOperationUnfinished
      ? new StartupError(error.message)
      : error;
  });
  if (layout.renamed > 0 || layout.kept > 0)
    logger.info({ ...layout, layout: KEY_LAYOUT }, "store keys renamed to the new key layout");
  if (layout.kept > 0)
    logger.warn(
      { kept: layout.kept },
      "keys of the old layout left as they were: their new names were taken",
    );
  const metrics = new FollowUpMetrics();
  // Writes that must survive a failover wait for replicas (REDIS_WAIT_REPLICAS; off at 0).
  // Also those of the operators' writes (erasure's opt-out rewrite) made by this process.
  const reportShortWait = ({ confirmed, wanted, waited, pauseMs, waitedFor }: ShortWait) => {
    metrics.replicaWaitsShort.inc();
    // Writes during a pause are only counted: the wait before them was logged with the pause.
    if (!waited || waitedFor !== undefined) return;
    if (pauseMs === undefined)
      logger.warn(
        { confirmed, wanted },
        "fewer replicas than REDIS_WAIT_REPLICAS confirmed a write",
      );
    else if (confirmed === 0)
      logger.warn(
        { confirmed, wanted, unwaitedMs: pauseMs },
        "fewer replicas than REDIS_WAIT_REPLICAS confirmed a write; no replica did, so writes on that node are not waited for during unwaitedMs",
      );
    else
      logger.warn(
        { confirmed, wanted, reducedMs: pauseMs },
        "fewer replicas than REDIS_WAIT_REPLICAS confirmed a write; writes on that node wait only for as many as confirmed during reducedMs",
      );
  };
  // A finished purchase whose trim failed after its last step ended: the step's change stands.
  // Logged by event id and the error's name and code only: a parse error's message may quote the
  // purchase (Redis being away is said as it is).
  const reportTrimFailed = (eventId: string, error: unknown) =>
    logger.warn(
      {
        eventId,
        error: isRedisUnavailable(error)
          ? String(error)
          : {
              name: error instanceof Error ? error.name : typeof error,
              code: (error as { code?: unknown } | null)?.code,
            },
      },
      "a step's change was made, but its finished purchase could not be trimmed (it stays whole until its record expires)",
    );
  const replicaWait = new ReplicaWait(
    redis,
    { replicas: env.REDIS_WAIT_REPLICAS, timeoutMs: env.REDIS_WAIT_TIMEOUT_MS },
    reportShortWait,
  );
  // Customers live in FOLLOW_UP_SHARDS shards; the first worker records the count, and a worker
  // with another count would look for customers where they are not.
  const shardCount = env.FOLLOW_UP_SHARDS;
  const recordedShards = await claimShardCount(redis, prefix, shardCount);
  if (recordedShards !== shardCount) {
    redis.disconnect();
    httpRedis.disconnect();
    throw new StartupError(
      `FOLLOW_UP_SHARDS is ${shardCount}, but this deployment's customers live in ${recordedShards} shard${recordedShards === 1 ? "" : "s"}: set FOLLOW_UP_SHARDS=${recordedShards} (to change it, stop every worker and run followups reshard; see "Scaling out" in the README)`,
    );
  }
  const parsedServed = parseServedShards(env.FOLLOW_UP_SHARDS_SERVED, shardCount);
  if ("problem" in parsedServed) {
    redis.disconnect();
    httpRedis.disconnect();
    throw new StartupError(`FOLLOW_UP_SHARDS_SERVED: ${parsedServed.problem}`);
  }
  const servedShards = parsedServed.shards;
  // Webhooks, unsubscribe links and tills are handled on a connection of their own, with replica
  // waits of their own (a WAIT covers the writes of the connection it is sent on): what the jobs'
  // connection waits for does not hold up an incoming STOP (connectWebhookRedis).
  const webhookRedis = await connectWebhookRedis(env.REDIS_URL, env.REDIS_CLUSTER, stop).catch(
    (error: unknown) => {
      redis.disconnect();
      httpRedis.disconnect();
      throw error;
    },
  );
  opened.push(webhookRedis);
  reportErrors(webhookRedis, "webhooks");
  const webhookReplicaWait = new ReplicaWait(
    webhookRedis,
    { replicas: env.REDIS_WAIT_REPLICAS, timeoutMs: env.REDIS_WAIT_TIMEOUT_MS },
    reportShortWait,
  );
  const addressHashSecret =
    env.ADDRESS_HASH_SECRET ?? (await sharedSecret(redis, prefix, "address-hash"));
  const recordRetentionMs = env.RECORD_RETENTION_DAYS * 86_400_000;
  // The stores what customers tell us is handled with, on one connection: the jobs' (opt-out
  // events in intake; the jobs use them all) and the webhooks'.
  const feedbackStoresOn = (connection: RedisClient, wait: ReplicaWait) => {
    const shards = shardStores(connection, prefix, shardCount, {
      replicaWait: wait,
      addressHashSecret,
      recordRetentionMs,
      onTrimFailed: reportTrimFailed,
    });
    const alertsQueue = new Queue(OWNER_ALERTS_QUEUE, {
      connection,
      prefix: prefixOf(OWNER_ALERTS_QUEUE),
    });
    const spendLedger = new SpendLedger(connection, prefix);
    return {
      shards,
      // Readers of every shard's ledger (reports, budgets, pending counts) take it from shard 0's
      // scope.
      ledger: shards.of(0).ledger,
      suppressions: new SuppressionList(connection, prefix, {
        addressHashSecret,
        replicaWait: wait,
      }),
      customers: new CustomerIndex(connection, prefix, { addressHashSecret, now }),
      smsReferences: new SmsReferences(connection, prefix),
      receipts: new WebhookReceipts(connection, prefix),
      callScripts: new CallScripts(connection, prefix),
      discountCodes: new DiscountCodes(connection, prefix),
      spendLedger,
      spend: {
        spend: spendLedger,
        onBudgetAlert: (alert: BudgetAlert) =>
          queueBudgetAlerts(alertsQueue, rules().owners, alert),
      },
      ownerAlertQueue: new OwnerAlertQueue(connection, prefix),
      alertsQueue,
    };
  };
  const jobStores = feedbackStoresOn(redis, replicaWait);
  const webhookStores = feedbackStoresOn(webhookRedis, webhookReplicaWait);
  const {
    shards,
    suppressions,
    customers,
    smsReferences,
    callScripts,
    discountCodes,
    spendLedger,
    spend,
    ownerAlertQueue,
    alertsQueue,
  } = jobStores;
  // Ids in spans are keyed hashes under the same secret as addresses.
  const traces =
    tracer && (await import("./follow-up-traces.js")).tracesOn(tracer, addressHashSecret);
  const orders = new OrderStore(redis, prefix, { now });
  const generations = new RulesGenerations(redis, prefix);
  let { generation, latest: latestGeneration } = await generations.generationOf(
    config.rules.version,
  );

  // Every shard has a follow-ups queue of its own, beside its records.
  const followUpQueuesOn = (connection: RedisClient) =>
    new Shards(
      shardCount,
      (shard) =>
        new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
          connection,
          prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, env.REDIS_CLUSTER, shard, shardCount),
        }),
    );
  const followUps = followUpQueuesOn(redis);
  const events = new Queue(PURCHASE_EVENTS_QUEUE, {
    connection: redis,
    prefix: prefixOf(PURCHASE_EVENTS_QUEUE),
  });
  const reports = new Queue(OWNER_REPORTS_QUEUE, {
    connection: redis,
    prefix: prefixOf(OWNER_REPORTS_QUEUE),
    settings: REPORT_QUEUE_SETTINGS,
  });
  const publisher = new EventPublisher({
    connection: httpRedis,
    prefix,
    clock,
    cluster: env.REDIS_CLUSTER,
  });
  const adminQueues = {
    followUps: followUpQueuesOn(httpRedis),
    events: new Queue(PURCHASE_EVENTS_QUEUE, {
      connection: httpRedis,
      prefix: prefixOf(PURCHASE_EVENTS_QUEUE),
    }),
    // The console's (its overview and Bull Board), with the two above: on the HTTP connection,
    // whose commands fail at once while Redis is away (503), where the jobs' would hold the
    // page until Redis returns.
    reports: new Queue(OWNER_REPORTS_QUEUE, {
      connection: httpRedis,
      prefix: prefixOf(OWNER_REPORTS_QUEUE),
      settings: REPORT_QUEUE_SETTINGS,
    }),
    alerts: new Queue(OWNER_ALERTS_QUEUE, {
      connection: httpRedis,
      prefix: prefixOf(OWNER_ALERTS_QUEUE),
    }),
  };
  const operatorTools = createOperatorTools({
    redis,
    prefix,
    shards: shardCount,
    rules,
    followUps,
    events,
    outboxDir: env.OUTBOX_DIR,
    webhookSpool: new WebhookSpool(env.WEBHOOK_SPOOL_DIR),
    addressHashSecret,
    replicaWait: { replicas: env.REDIS_WAIT_REPLICAS, timeoutMs: env.REDIS_WAIT_TIMEOUT_MS },
    onReplicaShort: reportShortWait,
    onTrimFailed: reportTrimFailed,
    logger,
    recordRetentionMs,
    sendLeaseMs: env.DELIVERY_LEASE_MS,
    now,
    onErased: () => metrics.erasures.inc(),
  });
  const httpShards = shardStores(httpRedis, prefix, shardCount, {
    addressHashSecret,
    recordRetentionMs,
    onTrimFailed: reportTrimFailed,
  });
  // Read when /metrics is scraped: on the HTTP connection, which fails at once while Redis is
  // away (the jobs' connection would hold the scrape until Redis returns).
  metrics.trackQueues([adminQueues.events, ...adminQueues.followUps.all()]);
  const spendOnHttp = new SpendLedger(httpRedis, prefix);

  const refunds = createRefunds({
    rules,
    shards,
    orders,
    followUps,
    metrics,
    logger,
    sendLeaseMs: env.DELIVERY_LEASE_MS,
  });
  metrics.trackSpend(
    async () => {
      const current = rules();
      const month = spendMonthOf(now(), current.defaults.timezone);
      return Promise.all(
        PRICED_CHANNELS.filter((channel) => current.spend.prices[channel]).map(async (channel) => ({
          channel,
          spent: (await spendOnHttp.spent(channel, month)) / MICROS,
        })),
      );
    },
    () =>
      PRICED_CHANNELS.flatMap((channel) => {
        const budget = rules().spend.budgets[channel];
        return budget ? [{ channel, budget: budget.monthlyMicros / MICROS }] : [];
      }),
  );
  const unsubscribeSecret =
    env.UNSUBSCRIBE_SECRET ?? (await sharedSecret(redis, prefix, "unsubscribe"));
  const feedbackOn = (stores: ReturnType<typeof feedbackStoresOn>) =>
    createCustomerFeedback({
      unsubscribeSecret,
      ...(env.UNSUBSCRIBE_MAILTO && { unsubscribeMailto: env.UNSUBSCRIBE_MAILTO }),
      spend: stores.spend,
      rules,
      templates: () => config.templates,
      sms: channels.sms,
      shards: stores.shards,
      onReply: createOwnerAlerts({
        rules,
        shards: stores.shards,
        alerts: stores.ownerAlertQueue,
        queue: stores.alertsQueue,
        logger,
        now,
      }),
      ledger: stores.ledger,
      smsReferences: stores.smsReferences,
      suppressions: stores.suppressions,
      receipts: stores.receipts,
      customers: stores.customers,
      email: channels.email,
      ...(env.SUPPORT_EMAIL && { supportEmail: env.SUPPORT_EMAIL }),
      logger,
      now,
    });
  const feedback = feedbackOn(jobStores);
  // What webhooks, unsubscribe links and tills are answered with (and the spool replayed through).
  const webhookFeedback = feedbackOn(webhookStores);
  // The rules name the shop; SHOP_NAME (deprecated) only stands in for the default name.
  const shopName = () => {
    const named = config.rules.shopName;
    return named === DEFAULT_SHOP_NAME && env.SHOP_NAME ? env.SHOP_NAME : named;
  };
  const voiceCalls = createVoiceCalls({
    rules,
    shopName,
    calls: webhookStores.callScripts,
    shards: webhookStores.shards,
    fileReply: webhookFeedback.fileReply,
    spend: webhookStores.spend,
    suppressions: webhookStores.suppressions,
    ledger: webhookStores.ledger,
    logger,
    now,
  });
  const publicUrl = env.PUBLIC_URL ?? `http://localhost:${env.HTTP_PORT}`;
  const discountSecret = env.DISCOUNT_SECRET ?? (await sharedSecret(redis, prefix, "discount"));

  // Workers block on their own connections; passed-in connections are ours to close.
  const fixedConnections = [
    duplicateClient(redis),
    duplicateClient(redis),
    duplicateClient(redis),
  ] as const;
  const workerConnections: RedisClient[] = [...fixedConnections];
  opened.push(...fixedConnections);
  for (const [i, connection] of fixedConnections.entries())
    reportErrors(connection, ["intake", "reports", "alerts"][i] ?? "worker");
  const workerSettings = {
    removeOnComplete: KEEP_COMPLETED,
    removeOnFail: KEEP_FAILED,
    lockDuration: env.JOB_LOCK_MS,
    stalledInterval: env.JOB_LOCK_MS,
    maxStalledCount: MAX_STALLED_COUNT,
    // Run once connected and checked again against a reshard or move begun meanwhile (below).
    autorun: false,
  };
  const intake = new IntakeWorker(
    PURCHASE_EVENTS_QUEUE,
    createIntakeProcessor({
      recordRetentionMs,
      codes: discountCodes,
      rules,
      shards: shards.map((stores, shard) => ({ ...stores, followUps: followUps.of(shard) })),
      customers,
      orders,
      suppressions,
      refunds,
      feedback,
      metrics,
      logger,
      clock,
      promoteHorizonMs: env.PROMOTE_HORIZON_MS,
      rulesGeneration: () => generation,
      ...(shardCount > 1 && { deploymentIds: new DeploymentEventIds(redis, prefix) }),
      ...(traces && { traces }),
      erase: operatorTools.erase,
    }),
    {
      ...workerSettings,
      prefix: prefixOf(PURCHASE_EVENTS_QUEUE),
      removeOnComplete: KEEP_COMPLETED_EVENTS,
      connection: fixedConnections[0],
      concurrency: env.INTAKE_CONCURRENCY,
    },
  );
  // Webhooks taken while Redis was away (see spoolReplay): texts and calls wait for them.
  const webhookSpool = new WebhookSpool(env.WEBHOOK_SPOOL_DIR);
  // Whether webhooks wait in the spool; one that cannot be listed holds nothing back (each replay
  // round logs it), nor do files that could be neither handled nor moved aside (spoolReplay).
  const spoolStuck = new Set<string>();
  const spoolWaiting = async () =>
    (await webhookSpool.list().catch(() => [])).some((name) => !spoolStuck.has(name));
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
    smsReferences,
    // Twilio's statuses that came before an SMS's reference, applied by the worker that writes it.
    smsStatus: feedback.smsStatus,
    suppressions,
    calls: callScripts,
    codes: discountCodes,
    orders,
    spend,
    metrics,
    rateLimiter: new ChannelRateLimiter(redis, prefix),
    retry: {
      maxAttempts: env.DELIVERY_ATTEMPTS,
      delayMs: cappedBackoff(env.DELIVERY_RETRY_BASE_MS, env.DELIVERY_RETRY_MAX_MS, Math.random),
      maxDelayMs: env.DELIVERY_RETRY_MAX_MS,
    },
    sendLeaseMs: env.DELIVERY_LEASE_MS,
    unavailableChannels: unavailableChannelsOf(channels),
    logger,
    clock,
    redisReadySince: () => redisReadySince,
    spoolWaiting,
    random: Math.random,
    rulesGeneration: () => generation,
  };
  // One BullMQ worker per served shard's queue, each on a connection of its own; the process's
  // DELIVERY_CONCURRENCY is shared out among them (at least one send each).
  const shardConcurrency = (index: number) =>
    Math.max(
      1,
      Math.floor(env.DELIVERY_CONCURRENCY / servedShards.length) +
        (index < env.DELIVERY_CONCURRENCY % servedShards.length ? 1 : 0),
    );
  const deliveries = servedShards.map((shard, index) => {
    const { store, caps, thankYous, history } = shards.of(shard);
    const deps = {
      ...deliveryDeps,
      shard,
      store,
      caps,
      thankYous,
      history,
      ...(traces && {
        tracing: { traces, intakeTraceOf: (eventId: string) => store.intakeTraceOf(eventId) },
      }),
    };
    const connection = duplicateClient(redis);
    workerConnections.push(connection);
    opened.push(connection);
    reportErrors(connection, `delivery ${shard}`);
    const worker = new Worker<FollowUpJobData>(FOLLOW_UPS_QUEUE, createDeliveryProcessor(deps), {
      ...workerSettings,
      prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, env.REDIS_CLUSTER, shard, shardCount),
      connection,
      concurrency: shardConcurrency(index),
    });
    worker.on("failed", leaveFailedJobToJobWatch(deps.logger));
    worker.on("failed", recordStalledTooOften(deps));
    return worker;
  });
  const reportMarks = new ReportMarks(redis, prefix);
  const forgetReportMark = { forget: (id: string) => reportMarks.forget(id) };
  const reportWorker = new Worker(
    OWNER_REPORTS_QUEUE,
    createOwnerReportProcessor({
      rules,
      sources: reportSourcesOn(redis, prefix, shardCount, operatorTools.postponed, logger),
      email: channels.email,
      metrics,
      logger,
      nextRun: async (id) => Number((await reports.getJobScheduler(id))?.next),
      marks: reportMarks,
    }),
    {
      ...workerSettings,
      prefix: prefixOf(OWNER_REPORTS_QUEUE),
      connection: fixedConnections[1],
      concurrency: 1,
      settings: REPORT_QUEUE_SETTINGS,
    },
  );
  const budgetAlert = createBudgetAlertProcessor({
    rules,
    spend: spendLedger,
    email: channels.email,
    metrics,
    logger,
  });
  const alertWorker = new Worker(
    OWNER_ALERTS_QUEUE,
    byJobName(
      BUDGET_ALERT_JOB,
      budgetAlert,
      createOwnerAlertProcessor({
        rules,
        alerts: ownerAlertQueue,
        shards,
        email: channels.email,
        metrics,
        logger,
        ...(env.ADMIN_TOKENS && {
          consoleUrl: `${env.PUBLIC_URL ?? `http://localhost:${env.HTTP_PORT}`}/console`,
        }),
      }),
    ),
    {
      ...workerSettings,
      prefix: prefixOf(OWNER_ALERTS_QUEUE),
      connection: fixedConnections[2],
      concurrency: 1,
    },
  );
  // Failing (or stopped by a signal), it leaves nothing open: closed with the workers below.
  const schedulersSynced = syncReportSchedulers(
    reports,
    config.rules.owners,
    forgetReportMark,
  ).then(
    () => undefined,
    (error: unknown) => error,
  );
  for (const queue of [
    ...followUps.all(),
    events,
    reports,
    alertsQueue,
    webhookStores.alertsQueue,
    ...adminQueues.followUps.all(),
    adminQueues.events,
    adminQueues.reports,
    adminQueues.alerts,
  ])
    reportQueueErrors(queue);
  const workers = [
    { label: "intake", worker: intake },
    ...deliveries.map((worker, i) => ({ label: `delivery ${servedShards[i]}`, worker })),
    { label: "reports", worker: reportWorker },
    { label: "alerts", worker: alertWorker },
  ];
  // Redis out of memory or unable to save refuses every fetch: the worker waits, not spins.
  const refusalPauses = workers.map(({ label, worker }) => {
    const pause = pauseOnWriteRefusal({
      worker,
      label,
      logger,
      now,
      onPause: () => metrics.writeRefusalPauses.inc({ worker: label }),
    });
    worker.on("error", (error) => {
      if (!pause.handle(error) && !redisAway.handle(error, { worker: label }))
        logger.error({ err: error, worker: label }, "worker error");
    });
    return pause;
  });
  // `followups reshard` and `migrate` mark the Redis, then refuse if any worker is connected. A
  // reshard marked after the check at the top but before these workers connected would count
  // none and go on beneath them: so the workers connect first (counted from now on), the marks
  // are read again, and only then do they take jobs and the promoters start.
  const lateRefusal = await schedulersSynced
    .then(async (failed) => {
      if (failed !== undefined) throw failed;
      await Promise.all(workers.map(({ worker }) => worker.waitUntilReady()));
      return stop?.aborted ? new StartupStopped() : startRefusal(redis, prefix);
    })
    .catch((error: unknown) => stoppedOr(error));
  if (lateRefusal === undefined) checked();
  else {
    // Nothing has taken a job yet: close it all, whatever fails on the way.
    for (const pause of refusalPauses) pause.stop();
    await Promise.allSettled(workers.map(({ worker }) => worker.close(true)));
    await Promise.allSettled([
      publisher.close(),
      ...[
        ...followUps.made(),
        events,
        reports,
        alertsQueue,
        webhookStores.alertsQueue,
        ...adminQueues.followUps.made(),
        adminQueues.events,
        adminQueues.reports,
        adminQueues.alerts,
      ].map((queue) => queue.close()),
    ]);
    for (const connection of [redis, httpRedis, webhookRedis, ...workerConnections])
      connection.disconnect();
    throw typeof lateRefusal === "string" ? new StartupError(lateRefusal) : lateRefusal;
  }
  for (const { label, worker } of workers)
    worker
      .run()
      .catch((error: unknown) => logger.error({ err: error, worker: label }, "worker stopped"));
  // Each served shard has its promoter and its re-planner, over that shard's schedule.
  const servedParts = servedShards.map((shard) => {
    const { store, schedule, history, thankYous, jobWatch, caps } = shards.of(shard);
    const replanner = createReplanner({
      store,
      schedule,
      history,
      thankYous,
      orders,
      customers,
      metrics,
      logger,
      clock,
      horizonMs: env.PROMOTE_HORIZON_MS,
      recordRetentionMs,
    });
    const promoter = createPromoter({
      replan: {
        generation: () => generation,
        run: (eventId, promoting) =>
          replanner.replanEvent(eventId, config.rules, generation, promoting),
      },
      schedule,
      followUps: followUps.of(shard),
      horizonMs: env.PROMOTE_HORIZON_MS,
      now,
      logger,
      jobWatch,
      onPromoted: (count) => metrics.promoted.inc(count),
      onReplanFailed: () => metrics.replanFailures.inc({ during: "promotion" }),
    });
    // A few rounds per horizon, so a step is a job minutes before it is due, whichever runs.
    promoter.start(Math.min(5_000, Math.floor(env.PROMOTE_HORIZON_MS / 4)));
    // Steps whose job is gone while they are still pending are queued again or ended, not left.
    const lostJobs = createLostJobs({
      shard,
      store,
      watch: jobWatch,
      followUps: followUps.of(shard),
      redis,
      caps,
      rules,
      metrics,
      logger,
      now,
      marginMs: lostJobMarginMs({
        sendLeaseMs: env.DELIVERY_LEASE_MS,
        jobLockMs: env.JOB_LOCK_MS,
        retryMaxMs: env.DELIVERY_RETRY_MAX_MS,
      }),
    });
    lostJobs.start();
    return { shard, schedule, replanner, promoter, lostJobs };
  });
  let stopping = false;
  // A worker that loads the newest rules re-plans what is scheduled in the shards it serves, in
  // the background; one still on older rules (a rolling deploy) leaves it to the newer ones.
  let replanning: Promise<unknown> = Promise.resolve();
  // A walk that failed (an error reply of Redis: loading, failing over) is tried again, later
  // each time, until it completes or other rules are loaded.
  let replanRetry: NodeJS.Timeout | undefined;
  const replanIfNewest = (failures = 0) => {
    clearTimeout(replanRetry);
    if (generation < latestGeneration) {
      logger.warn(
        { generation, latestGeneration },
        "newer rules are deployed elsewhere; this worker does not re-plan scheduled follow-ups (if these rules are meant to replace them, as when undoing an edit, deploy them as a new edit: a changed comment is enough)",
      );
      return;
    }
    const rules = config.rules;
    const planned = generation;
    const interrupted = () => stopping || generation !== planned;
    replanning = replanning
      .then(async () => {
        for (const { shard, schedule, replanner } of servedParts) {
          if (interrupted()) return;
          // Before any bucket is read: a purchase filed under older rules from now on (by a worker
          // still on them, or planned here just before these rules were loaded) is noted for
          // replanLater, as the walk may have passed its bucket.
          await schedule.beginWalk(planned);
          // Once one worker has walked a shard's schedule for these rules, the others need not.
          if (await generations.walked(planned, shard)) continue;
          const summary = await replanner.replanAll(rules, planned, interrupted);
          if (!interrupted()) await generations.markWalked(planned, shard);
          if (summary.purchases > 0)
            logger.info(
              { generation: planned, shard, ...summary },
              "scheduled follow-ups re-planned",
            );
        }
      })
      .catch((error: unknown) => {
        if (interrupted()) return;
        const retryInMs = Math.min(REPLAN_RETRY_MAX_MS, REPLAN_RETRY_MS * 2 ** failures);
        logger.error({ err: error, retryInMs }, "re-planning failed; it is tried again");
        replanRetry = setTimeout(() => {
          if (!interrupted()) replanIfNewest(failures + 1);
        }, retryInMs);
      });
  };
  replanIfNewest();
  // Purchases filed under older rules after a walk under newer ones began are re-planned within
  // a minute by a worker on the newer rules (a worker on older ones leaves them).
  const replanStragglers = periodic({
    firstMs: REPLAN_LATER_EVERY_MS,
    everyMs: REPLAN_LATER_EVERY_MS,
    run: async () => {
      const rules = config.rules;
      const planned = generation;
      for (const { shard, replanner } of servedParts) {
        const summary = await replanner.replanLater(
          rules,
          planned,
          () => replanStragglers.stopped() || generation !== planned,
        );
        if (summary.purchases > 0)
          logger.info(
            { generation: planned, shard, ...summary },
            "follow-ups planned under older rules re-planned",
          );
      }
    },
    failed: (error) =>
      logger.error({ err: error }, "re-planning follow-ups planned under older rules failed"),
  });
  replanStragglers.start();
  // Follow-ups an earlier version queued as delayed jobs (all in shard 0, the only shard then)
  // move into the schedule, in the background, by the workers serving shard 0.
  const upgrading = servedShards.includes(0)
    ? moveDelayedJobsToSchedule({
        followUps: followUps.of(0),
        schedule: shards.of(0).schedule,
        store: shards.of(0).store,
        horizonMs: env.PROMOTE_HORIZON_MS,
        recordRetentionMs,
        now,
        logger,
        stopped: () => stopping,
      }).catch((error: unknown) =>
        logger.error(
          { err: error },
          "moving delayed jobs into the schedule failed; retried at start",
        ),
      )
    : Promise.resolve();
  // Steps that became jobs before the job watch (or whose job was lost already) are filed in it,
  // once per shard, in the background, by one of the workers serving it.
  const watchingEarlier = Promise.all(
    servedShards.map((shard) =>
      watchStepsOfEarlierVersions({
        shard,
        watch: shards.of(shard).jobWatch,
        horizonMs: env.PROMOTE_HORIZON_MS,
        now,
        logger,
        stopped: () => stopping,
      }).catch((error: unknown) =>
        logger.error(
          { err: error, shard },
          "filing the steps of earlier versions in the job watch failed; tried again at a later start",
        ),
      ),
    ),
  );
  // Expired entries of the packed indexes go within a day, even from buckets not written again.
  const indexSweeper = createPackedIndexSweeper({ redis, prefix, now, logger });
  indexSweeper.start();
  // A shard that no worker serves (FOLLOW_UP_SHARDS_SERVED) is said, not left silent.
  const coverage =
    shardCount > 1
      ? createShardCoverageWatch({
          shards: shardCount,
          workersOf: (shard) => followUps.of(shard).getWorkersCount(),
          report: (unserved) => metrics.unservedShards.set(unserved),
          logger,
        })
      : undefined;
  coverage?.start();
  // Finished jobs go at their age even when no other job finishes after them (a quiet shop).
  const seconds = (age: number) => age * 1000;
  const finishedJobs = createFinishedJobsSweeper({
    queues: [
      {
        queue: events,
        completedMs: seconds(KEEP_COMPLETED_EVENTS.age),
        failedMs: seconds(KEEP_FAILED.age),
      },
      ...[...servedShards.map((shard) => followUps.of(shard)), reports, alertsQueue].map(
        (queue) => ({
          queue,
          completedMs: seconds(KEEP_COMPLETED.age),
          failedMs: seconds(KEEP_FAILED.age),
        }),
      ),
    ],
    redis,
    now,
    logger,
  });
  finishedJobs.start();
  // The outbox's messages and the spool's failed webhooks expire by age too (at start, then
  // hourly, in the background).
  const fileRetention = createFileRetention({
    outboxDir: env.OUTBOX_DIR,
    outboxMaxAgeMs: recordRetentionMs,
    spool: webhookSpool,
    failedMaxAgeMs: FAILED_WEBHOOK_MAX_AGE_MS,
    now,
    logger,
  });
  fileRetention.start();
  // Address indexes an earlier version kept a key per address move into buckets, in the
  // background, once per deployment.
  const packing = customers
    .packEarlierIndexes(HISTORY_RETENTION_MS, now, () => stopping)
    .then((moved) => {
      if (moved) logger.info({ moved }, "address indexes packed into buckets");
    })
    .catch((error: unknown) =>
      logger.error({ err: error }, "packing address indexes failed; retried at start"),
    );
  const closeWorkers = (force = false) => {
    stopping = true;
    clearTimeout(replanRetry);
    for (const pause of refusalPauses) pause.stop();
    return Promise.all([
      ...servedParts.flatMap(({ promoter, lostJobs }) => [promoter.stop(), lostJobs.stop()]),
      indexSweeper.stop(),
      replanStragglers.stop(),
      coverage?.stop(),
      finishedJobs.stop(),
      fileRetention.stop(),
      upgrading,
      watchingEarlier,
      packing,
      replanning,
      ...workers.map(({ worker }) => worker.close(force)),
    ]);
  };
  const connections = [redis, httpRedis, webhookRedis, ...workerConnections];
  // QUIT lets Redis answer what is pending first; a connection that is not up is just dropped
  // (the HTTP one refuses a QUIT while down and would otherwise reconnect forever).
  const closeConnections = async () => {
    await publisher.close();
    await Promise.all([
      ...followUps.made().map((queue) => queue.close()),
      events.close(),
      reports.close(),
      alertsQueue.close(),
      webhookStores.alertsQueue.close(),
      ...adminQueues.followUps.made().map((queue) => queue.close()),
      adminQueues.events.close(),
      adminQueues.reports.close(),
      adminQueues.alerts.close(),
    ]);
    await Promise.all(
      connections.map((c) =>
        c.status === "ready" ? c.quit().catch(() => c.disconnect()) : c.disconnect(),
      ),
    );
  };

  // Whether the last reload was refused: a valid one after it says so even when it changes
  // nothing (an edit undone), since the last line the operator saw said the edit was invalid.
  let lastReloadRefused = false;
  const reload = async (): Promise<boolean> => {
    const next = await loadConfig(env.CONFIG_DIR);
    if (!next.ok) {
      for (const problem of next.problems)
        logger.error({ problem: formatProblem(problem) }, "config edit rejected");
      logger.error({ kept: config.version }, "invalid config edit; keeping the previous version");
      lastReloadRefused = true;
      return false;
    }
    const nextProblem = linkProblem(next.config.rules);
    if (nextProblem && realEmail) {
      logger.error({ problem: nextProblem }, "config edit rejected");
      logger.error({ kept: config.version }, "invalid config edit; keeping the previous version");
      lastReloadRefused = true;
      return false;
    }
    const refusedBefore = lastReloadRefused;
    lastReloadRefused = false;
    if (next.config.version === config.version)
      // Said either way: an operator's SIGHUP (or a save that changed nothing) gets an answer.
      logger.info(
        { version: config.version, generation },
        refusedBefore
          ? "config valid again; the version in force stays as it was"
          : "config unchanged; nothing to reload",
      );
    if (next.config.version !== config.version) {
      // Said once it is in force: a generation that cannot be read keeps the previous version.
      const numbered = await generations.generationOf(next.config.rules.version);
      const previousVersion = config.version;
      config = next.config;
      generation = numbered.generation;
      latestGeneration = numbered.latest;
      logger.info({ previousVersion, version: config.version }, "config reloaded");
      replanIfNewest();
      // The new config is in force whatever becomes of the owners' report schedules.
      await syncReportSchedulers(reports, config.rules.owners, forgetReportMark).catch(
        (error: unknown) =>
          logger.error(
            { err: error, version: config.version },
            "owner report schedules not updated to the reloaded config; they are at the next reload or start",
          ),
      );
    }
    return true;
  };
  // One reload at a time, each reading the files once the one before has finished: a slow read
  // of an earlier save (a SIGHUP and a file event close together) never lands after a later one's,
  // nor numbers its rules as a newer generation than the files on disk.
  let reloads: Promise<boolean> = Promise.resolve(true);
  const reloadLogged = () => {
    reloads = reloads.then(() =>
      reload().catch((error: unknown) => {
        logger.error({ err: error }, "config reload failed; keeping the current version");
        return false;
      }),
    );
    return reloads;
  };
  const watcher =
    options.watchConfig === false
      ? undefined
      : watchConfigDir(env.CONFIG_DIR, () => void reloadLogged());

  let http: FastifyInstance | undefined;
  // The admin API and console answer on the HTTP connection, which fails fast while Redis is away.
  const adminTools = createOperatorTools({
    redis: httpRedis,
    prefix,
    shards: shardCount,
    rules,
    followUps: adminQueues.followUps,
    events: adminQueues.events,
    outboxDir: env.OUTBOX_DIR,
    webhookSpool: new WebhookSpool(env.WEBHOOK_SPOOL_DIR),
    addressHashSecret,
    // A wait on the HTTP connection ends well within its command timeout, which would fail the
    // request (503) after the write, every time while no replica answers.
    replicaWait: {
      replicas: env.REDIS_WAIT_REPLICAS,
      timeoutMs: Math.min(env.REDIS_WAIT_TIMEOUT_MS, HTTP_COMMAND_TIMEOUT_MS / 2),
    },
    onReplicaShort: reportShortWait,
    onTrimFailed: reportTrimFailed,
    recordRetentionMs,
    sendLeaseMs: env.DELIVERY_LEASE_MS,
    now,
    onErased: () => metrics.erasures.inc(),
  });
  let httpAddress: string | undefined;
  // An unsubscribe link's request (handled live, or replayed from the spool: dated when it came,
  // so that a START the number sent after it still counts).
  const unsubscribeBy = (request: SpooledInput<"unsubscribe">, receivedAt?: number) =>
    webhookFeedback.unsubscribe(
      request.customerHash === undefined
        ? request.customerId
        : { customerHash: request.customerHash },
      [request.channel],
      request.source,
      request.addressHash === undefined ? undefined : { addressHash: request.addressHash },
      request.scope,
      undefined,
      receivedAt,
    );
  // Inbound SMS, call answers, status callbacks and unsubscribe requests taken while Redis was
  // away, handled once it is back (also those of a former run), each dated when it arrived.
  const spoolReplay = createSpoolReplay({
    spool: webhookSpool,
    handle: failFast(webhookRedis)(
      (entry: SpooledWebhook): Promise<unknown> =>
        handleSpooled<unknown>(entry, {
          inboundSms: (message, receivedAt) =>
            webhookFeedback.inboundSms({ ...message, receivedAt }),
          gather: (gather, receivedAt) => voiceCalls.gathered({ ...gather, receivedAt }),
          smsStatus: (update, receivedAt) => webhookFeedback.smsStatus({ ...update, receivedAt }),
          callStatus: (status, receivedAt) => voiceCalls.status({ ...status, receivedAt }),
          unheard: (call) => voiceCalls.unheard(call),
          unsubscribe: (request, receivedAt) => unsubscribeBy(request, receivedAt),
        }),
    ),
    counted: ({ waiting, failed }) => {
      metrics.webhookSpoolFiles.set({ state: "waiting" }, waiting);
      metrics.webhookSpoolFiles.set({ state: "failed" }, failed);
    },
    now,
    redisReady: () => webhookRedis.status === "ready",
    isRedisAway: (error) =>
      error instanceof UnavailableError || isRedisUnavailable(error, webhookRedis),
    stuck: spoolStuck,
    logger,
  });
  if (env.HTTP_ENABLED === "true") {
    // Webhooks, tills and unsubscribe links work on a connection of their own, which waits for
    // Redis as the jobs' does: their answers are bounded (503 at once while Redis is away).
    const bounded = failFast(webhookRedis);
    http = createHttpServer({
      acceptEvent: acceptEventWith({
        publisher,
        shards: httpShards,
        ...(shardCount > 1 && { deploymentIds: new DeploymentEventIds(httpRedis, prefix) }),
        metrics,
        clock,
      }),
      unsubscribe: spoolUnsubscribeWhenUnavailable({
        handle: bounded(unsubscribeBy),
        spool: webhookSpool,
        now,
        logger,
      }),
      inboundSms: spoolWhenUnavailable({
        handle: bounded((message) => webhookFeedback.inboundSms(message)),
        spool: webhookSpool,
        now,
        logger,
        // Behind the webhooks still waiting in the spool (a START, a STOP): in the order they came.
        waiting: spoolWaiting,
      }),
      smsStatus: spoolSmsStatusWhenUnavailable({
        handle: bounded((update) => webhookFeedback.smsStatus(update)),
        spool: webhookSpool,
        now,
        logger,
      }),
      inboundEmail: bounded((raw) => webhookFeedback.inboundEmail(raw)),
      voiceCall: {
        answered: hangUpWhenUnavailable({
          handle: bounded((request) => voiceCalls.answered(request)),
          spool: webhookSpool,
          now,
          logger,
        }),
        gathered: spoolGatherWhenUnavailable({
          handle: bounded((request) => voiceCalls.gathered(request)),
          spool: webhookSpool,
          now,
          logger,
        }),
        status: spoolCallStatusWhenUnavailable({
          handle: bounded((request) => voiceCalls.status(request)),
          spool: webhookSpool,
          now,
          logger,
        }),
      },
      discountCodes: {
        lookup: bounded((code: string) => webhookStores.discountCodes.lookup(code, now())),
        redeem: bounded(async (code: string, orderId: string) => {
          const result = await webhookStores.discountCodes.redeem(code, orderId, now());
          const label = redemptionLabel(result);
          if (label) metrics.codeRedemptions.inc({ result: label });
          return result;
        }),
      },
      readiness: readinessWith({
        redis,
        webhookRedis,
        httpRedis,
        workers: [intake, ...deliveries],
      }),
      ...(env.ADMIN_TOKENS && {
        admin: adminApiWith({ tools: adminTools, tokens: env.ADMIN_TOKENS, redis: httpRedis }),
      }),
      metrics: metrics.registry,
      settings: {
        ...(env.API_TOKEN && { apiToken: env.API_TOKEN }),
        ...(env.TILL_TOKEN && { tillToken: env.TILL_TOKEN }),
        // Only a configured URL: without one, Twilio's signatures cannot be checked (503, not 403).
        ...(env.PUBLIC_URL && { publicUrl: env.PUBLIC_URL }),
        ...(env.TWILIO_AUTH_TOKEN && { twilioAuthToken: env.TWILIO_AUTH_TOKEN }),
        unsubscribeSecret,
        ...(env.UNSUBSCRIBE_MAILTO && { unsubscribeMailto: env.UNSUBSCRIBE_MAILTO }),
        get shopName() {
          return shopName();
        },
        bodyLimitBytes: env.HTTP_BODY_LIMIT,
        trustProxy: env.TRUST_PROXY,
        ...(env.INBOUND_EMAIL_TOKEN && { inboundEmailToken: env.INBOUND_EMAIL_TOKEN }),
        inboundEmailMaxBytes: env.INBOUND_EMAIL_MAX_BYTES,
      },
      logger,
    });
    if (env.ADMIN_TOKENS) {
      const httpOrders = new OrderStore(httpRedis, prefix, { now });
      // As on the rest of the HTTP API, a method a console page does not take (GET of a form's
      // POST) answers 405 with Allow, not 404, before the session check. Bull Board's paths
      // (`/console/queues`) are its own application's, which declares some in ways of its own.
      const methodNotAllowed = answerMethodNotAllowed(
        http,
        (url) =>
          (url === "/console" || url.startsWith("/console/")) && !url.startsWith("/console/queues"),
      );
      await registerConsole(http, {
        tokens: env.ADMIN_TOKENS,
        tools: adminTools,
        sessions: new ConsoleSessions(httpRedis, prefix),
        rules,
        versions: () => ({
          rules: config.rules.version,
          generation,
          templates: config.templates.version,
        }),
        queues: [
          adminQueues.events,
          ...adminQueues.followUps.all(),
          adminQueues.reports,
          adminQueues.alerts,
        ],
        // Addressed to no one in particular: the report greets with a plain "Hello,".
        report: (period) => adminTools.report(period, ""),
        preview: (ref) =>
          previewStep(
            { shards: httpShards, rules, compose: deliveryDeps.compose, orders: httpOrders },
            ref,
          ),
        cookieSecret: await sharedSecret(redis, prefix, "console-cookie"),
        ...(env.PUBLIC_URL && { publicUrl: env.PUBLIC_URL }),
      });
      methodNotAllowed.close();
    }
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

  // Where this worker's HTTP server listens, for `followups demo` (not a health signal: a
  // Redis that does not answer costs a renewal, and the entry runs out on its own). The entries
  // run out are removed here: one is left by each worker gone without stopping (killed,
  // crashed), on a port of its choosing (HTTP_PORT=0) a new one each time.
  const addresses = new StoreKeys(prefix).httpAddresses();
  const announce = () => {
    if (!httpAddress) return;
    const at = Date.now();
    void redis
      .hset(addresses, httpAddress, String(at + 3 * HTTP_ANNOUNCE_MS))
      .then(() => redis.hgetall(addresses))
      .then((held) => {
        const over = Object.keys(held).filter((address) => !(Number(held[address]) > at));
        return over.length > 0 ? redis.hdel(addresses, ...over) : 0;
      })
      .catch(() => {});
  };
  announce();
  const announcing = setInterval(announce, HTTP_ANNOUNCE_MS);
  announcing.unref();

  // A frozen Redis (connections open, nothing answered) is logged as away (watchRedisAnswers,
  // on a connection of its own: never behind this one's commands; every master of a cluster).
  const answers = watchRedisAnswers({ redis, away: redisAway, now });

  spoolReplay.start();
  logger.info(
    {
      transports: Object.entries(channels)
        .map(([name, channel]) => `${name}=${channel.transport}`)
        .join(" "),
      queues: {
        input: `${prefixOf(PURCHASE_EVENTS_QUEUE)}:${PURCHASE_EVENTS_QUEUE}`,
        followUps: `${prefixOf(FOLLOW_UPS_QUEUE)}:${FOLLOW_UPS_QUEUE}`,
      },
      shards: shardCount,
      shardsServed: env.FOLLOW_UP_SHARDS_SERVED ?? "all",
      traces: traces ? "on" : "off",
      http: httpAddress ?? "disabled",
      ...(http && httpAddress && { httpListening: listeningOn(http.server.address()) }),
      // Which secrets are configured (names only; values never reach a log).
      secretsSet: SECRET_ENV_VARS.filter((name) => env[name] !== undefined),
      rulesVersion: config.rules.version,
      rulesGeneration: generation,
      promoteHorizonMs: env.PROMOTE_HORIZON_MS,
      templatesVersion: config.templates.version,
    },
    "followups worker started",
  );
  if (!env.PUBLIC_URL)
    logger.warn({ publicUrl }, "PUBLIC_URL is not set; unsubscribe links point at localhost");
  if (env.SHOP_NAME)
    logger.warn("SHOP_NAME is deprecated: name the shop in the rules (shop.name); the rules win");

  let closing: Promise<void> | undefined;
  return {
    configVersion: () => config.version,
    ...(httpAddress && { httpAddress }),
    metrics,
    reload: reloadLogged,
    close() {
      clearInterval(announcing);
      answers.stop();
      if (httpAddress && !closing) void redis.hdel(addresses, httpAddress).catch(() => {});
      closing ??= closeWithin(env.SHUTDOWN_TIMEOUT_MS, logger, {
        watcher,
        spoolReplay,
        http,
        redis,
        connections,
        closeWorkers,
        closeConnections,
        channels: Object.values(channels),
        ...(options.tracing && { tracing: options.tracing }),
      });
      return closing;
    },
  };
}

/** One queue, two kinds of job: those named `name` go to `special`, the rest to `other`. */
function byJobName<A, B>(
  name: string,
  special: (job: Job, token?: string) => Promise<A>,
  other: (job: Job, token?: string) => Promise<B>,
): (job: Job, token?: string) => Promise<A | B> {
  return (job, token) => (job.name === name ? special(job, token) : other(job, token));
}
