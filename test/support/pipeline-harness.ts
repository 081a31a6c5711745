import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Queue } from "bullmq";
import type { DateTime } from "luxon";
import { inject } from "vitest";
import { parseDocument } from "yaml";
import type { DeliveryChannel } from "../../src/channels/channel.js";
import { createSmtpEmailChannel } from "../../src/channels/email-smtp.js";
import { createOutboxChannel } from "../../src/channels/outbox.js";
import { createTwilioSmsChannel } from "../../src/channels/sms-twilio.js";
import { createTwilioVoiceChannel } from "../../src/channels/voice-twilio.js";
import { type Env, readEnv } from "../../src/config/env.js";
import type { Channel } from "../../src/domain/events.js";
import { createLogger } from "../../src/logger.js";
import { eventLocator } from "../../src/operations/locate-event.js";
import { EventPublisher } from "../../src/publisher.js";
import {
  FOLLOW_UPS_QUEUE,
  type FollowUpJobData,
  followUpJobId,
  OWNER_REPORT_JOB,
  OWNER_REPORTS_QUEUE,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
} from "../../src/queue/names.js";
import { ownerSchedulerId } from "../../src/reports/owner-reports.js";
import { sumHours } from "../../src/store/delivery-ledger.js";
import { scheduleEntry } from "../../src/store/follow-up-schedule.js";
import type { FollowUpStore } from "../../src/store/follow-up-store.js";
import { bucketOf, customerShard, StoreKeys, shardScope } from "../../src/store/keys.js";
import { createRedisClient, type RedisClient } from "../../src/store/redis-client.js";
import { type ShardStores, type Shards, shardStores } from "../../src/store/shards.js";
import { startWorker, type WorkerHandle } from "../../src/worker.js";
import { deleteKeysWithPrefix, uniquePrefix } from "./redis-namespace.js";
import { type SmtpSink, startSmtpSink } from "./smtp-sink.js";
import { startTwilioFake, type TwilioFake } from "./twilio-fake.js";

export const TWILIO_SID = `AC${"1".repeat(32)}`;
export const TWILIO_TOKEN = "test-auth-token-123";
export const TWILIO_FROM = "+15005550006";

/** A whole pipeline on real parts: private Redis, SMTP sink, Twilio fake, the real worker. */
export interface PipelineHarness {
  readonly prefix: string;
  readonly redis: RedisClient;
  readonly sink: SmtpSink;
  readonly twilio: TwilioFake;
  readonly configDir: string;
  readonly outboxDir: string;
  /** Environment for this pipeline, as a child worker process would get it. */
  readonly envVars: Record<string, string>;
  /** What a CLI command needs to reach this pipeline's Redis: REDIS_URL, REDIS_CLUSTER, QUEUE_PREFIX. */
  readonly commandEnv: Record<string, string>;
  readonly env: Env;
  readonly publisher: EventPublisher;
  readonly events: Queue;
  /** The follow-ups queues as one: `getJob` looks in every shard's (see anyShardQueue). */
  readonly followUps: Queue<FollowUpJobData>;
  /** Every shard's follow-ups queue, by shard. */
  readonly followUpQueues: readonly Queue<FollowUpJobData>[];
  /** FOLLOW_UP_SHARDS of the pipeline. */
  readonly shards: number;
  /** The shard an event's record is in (0 when it has none). */
  shardOf(eventId: string): Promise<number>;
  /** Finds each event's shard by itself (see locatingStore). */
  readonly store: FollowUpStore;
  /**
   * Every shard's stores. Shard 0's `ledger` reads the ledger of every shard (as reports do);
   * a customer's history, replies and caps are in their shard: `stores.of(p.shardOfCustomer(id))`.
   */
  readonly stores: Shards<ShardStores>;
  /** The shard a customer lives in. */
  shardOfCustomer(customerId: string): number;
  worker?: WorkerHandle;
  /** Parsed log lines of the in-process worker. */
  readonly logs: Record<string, unknown>[];
  /** Starts the worker; `overrides` change its environment (a restart with new settings). */
  startWorker(overrides?: Partial<Env>): Promise<WorkerHandle>;
  close(): Promise<void>;
}

/**
 * Starts the pipeline. The config is the shipped one with send windows open all day, every day,
 * so a test's outcome never depends on the hour it runs at (timing is proven in unit tests).
 */
export async function startPipeline(
  label: string,
  options: {
    env?: Record<string, string>;
    startWorker?: boolean;
    /** A Redis of the test's own (e.g. one it restarts); default the suite's shared one. */
    redisUrl?: string;
    /** Whether `redisUrl` names a Redis Cluster's nodes (default: the suite's mode). */
    cluster?: boolean;
    /** false: no voice adapter, as a deployment without Twilio voice (calls go to the outbox). */
    calls?: boolean;
    /** false: no SMTP, as a deployment without it (emails, owners' too, go to the outbox). */
    smtp?: boolean;
    /** FOLLOW_UP_SHARDS (default: the run's, one on a single Redis, four on the cluster). */
    shards?: number;
  } = {},
): Promise<PipelineHarness> {
  const redisUrl = options.redisUrl ?? inject("redisUrl");
  // The cluster run (vitest.cluster.config.ts) provides a Redis Cluster's nodes.
  const cluster = options.cluster ?? (options.redisUrl === undefined && inject("redisCluster"));
  const shards = options.shards ?? inject("followUpShards");
  const prefix = uniquePrefix(label);
  const root = await mkdtemp(path.join(tmpdir(), `followups-${label}-`));
  const configDir = path.join(root, "config");
  const outboxDir = path.join(root, "outbox");
  await cp("config", configDir, { recursive: true });
  await openAllWindows(path.join(configDir, "rules.yaml"));
  const sink = await startSmtpSink();
  const twilio = await startTwilioFake({ accountSid: TWILIO_SID, authToken: TWILIO_TOKEN });
  const envVars: Record<string, string> = {
    NODE_ENV: "test",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    REDIS_URL: redisUrl,
    REDIS_CLUSTER: String(cluster),
    QUEUE_PREFIX: prefix,
    FOLLOW_UP_SHARDS: String(shards),
    CONFIG_DIR: configDir,
    OUTBOX_DIR: outboxDir,
    WEBHOOK_SPOOL_DIR: path.join(root, "spool"),
    SMTP_URL: sink.url,
    MAIL_FROM: "Corner Shop <hello@shop.example>",
    TWILIO_ACCOUNT_SID: TWILIO_SID,
    TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
    TWILIO_FROM,
    TWILIO_API_URL: twilio.baseUrl,
    DELIVERY_RETRY_BASE_MS: "200",
    DELIVERY_RETRY_MAX_MS: "1000",
    DELIVERY_LEASE_MS: "3000",
    JOB_LOCK_MS: "3000",
    SHUTDOWN_TIMEOUT_MS: "5000",
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "0",
    API_TOKEN: "test-api-token-0123456789",
    PUBLIC_URL: "https://followups.test",
    ...options.env,
  };
  const envResult = readEnv(envVars);
  if (!envResult.ok) throw new Error(`bad test env: ${envResult.problems.join("; ")}`);
  const env = envResult.env;
  const redis = createRedisClient(redisUrl, cluster, { maxRetriesPerRequest: null });
  const publisher = new EventPublisher({ connection: redisUrl, prefix, cluster });
  const events = new Queue(PURCHASE_EVENTS_QUEUE, {
    connection: redis,
    prefix: queuePrefix(prefix, PURCHASE_EVENTS_QUEUE, cluster),
  });
  const followUpQueues = Array.from(
    { length: shards },
    (_, shard) =>
      new Queue<FollowUpJobData>(FOLLOW_UPS_QUEUE, {
        connection: redis,
        prefix: queuePrefix(prefix, FOLLOW_UPS_QUEUE, cluster, shard, shards),
      }),
  );
  const followUps = anyShardQueue(followUpQueues);

  const logs: Record<string, unknown>[] = [];
  const harness: PipelineHarness = {
    logs,
    prefix,
    redis,
    sink,
    twilio,
    configDir,
    outboxDir,
    envVars,
    commandEnv: {
      REDIS_URL: envVars.REDIS_URL ?? "",
      REDIS_CLUSTER: envVars.REDIS_CLUSTER ?? "false",
      QUEUE_PREFIX: prefix,
      // As the workers': a step `sending` this long untouched lost its sender (cancel reads it).
      DELIVERY_LEASE_MS: envVars.DELIVERY_LEASE_MS ?? "",
    },
    env,
    publisher,
    events,
    followUps,
    followUpQueues,
    shards,
    shardOf: shardOfEvent(redis, prefix, shards),
    store: locatingStore(redis, prefix, shards),
    stores: shardStores(redis, prefix, shards),
    shardOfCustomer: (customerId) => customerShard(customerId, shards),
    async startWorker(overrides: Partial<Env> = {}) {
      const destination = { write: (line: string) => void logs.push(JSON.parse(line)) };
      const logger = createLogger({
        level: process.env.TEST_LOG_LEVEL ?? "info",
        pretty: false,
        destination,
      });
      harness.worker = await startWorker({
        env: { ...env, ...overrides },
        logger,
        channels: channelsFor(env, options.calls ?? true, options.smtp ?? true),
        watchConfig: true,
      });
      return harness.worker;
    },
    async close() {
      await harness.worker?.close();
      await publisher.close();
      await events.close();
      await Promise.all(followUpQueues.map((queue) => queue.close()));
      await deleteKeysWithPrefix(redis, prefix);
      await redis.quit();
      await sink.close();
      await twilio.close();
      await rm(root, { recursive: true, force: true });
    },
  };
  if (options.startWorker !== false) await harness.startWorker();
  return harness;
}

/** The real adapters, pointed at the sink and the fake. */
export function channelsFor(env: Env, calls = true, smtp = true): Record<Channel, DeliveryChannel> {
  return {
    email: smtp
      ? createSmtpEmailChannel({
          smtpUrl: env.SMTP_URL ?? "",
          from: env.MAIL_FROM ?? "",
          ...(env.REPLY_TO && { replyTo: env.REPLY_TO }),
        })
      : createOutboxChannel({ dir: env.OUTBOX_DIR, from: env.MAIL_FROM ?? "" }),
    sms: createTwilioSmsChannel({
      accountSid: env.TWILIO_ACCOUNT_SID ?? "",
      authToken: env.TWILIO_AUTH_TOKEN ?? "",
      from: env.TWILIO_FROM ?? "",
      apiUrl: env.TWILIO_API_URL ?? "",
    }),
    // Calls need PUBLIC_URL for Twilio to ask what to say, as in production (channelsFromEnv).
    voice:
      calls && env.PUBLIC_URL
        ? createTwilioVoiceChannel({
            accountSid: env.TWILIO_ACCOUNT_SID ?? "",
            authToken: env.TWILIO_AUTH_TOKEN ?? "",
            callerId: env.TWILIO_CALLER_ID ?? env.TWILIO_FROM ?? "",
            publicUrl: env.PUBLIC_URL,
            apiUrl: env.TWILIO_API_URL ?? "",
          })
        : createOutboxChannel({ dir: env.OUTBOX_DIR, from: env.MAIL_FROM ?? "" }),
  };
}

async function openAllWindows(rulesFile: string): Promise<void> {
  const doc = parseDocument(await readFile(rulesFile, "utf8"));
  const allDay = {
    start: "00:00",
    end: "24:00",
    days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    closedOnHolidays: false,
  };
  for (const channel of ["email", "sms", "voice"])
    doc.setIn(["sendWindows", channel], doc.createNode(allDay));
  doc.setIn(["channels", "email", "ratePerSecond"], 1000);
  // Caps would couple tests that reuse one customer; the cap test sets its own.
  doc.setIn(["frequencyCaps"], doc.createNode({ email: [], sms: [], voice: [] }));
  doc.setIn(["channels", "sms", "ratePerSecond"], 1000);
  doc.setIn(["channels", "voice", "ratePerSecond"], 1000);
  await writeFile(rulesFile, doc.toString());
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until the input queue's job (an event's, by id) has finished; how it ended. */
export async function eventProcessed(p: PipelineHarness, jobId: string) {
  return eventually(async () => {
    const state = await (await p.events.getJob(jobId))?.getState();
    return state === "completed" || state === "failed" ? state : undefined;
  }, `event job ${jobId} to finish`);
}

/**
 * Has the worker send an owner (by email) their report of one local day (`day`, ISO date), as
 * their scheduler would, and waits until it has gone.
 */
export async function sendOwnerReport(
  p: PipelineHarness,
  owner: { readonly email: string },
  day: DateTime,
): Promise<void> {
  const reports = new Queue(OWNER_REPORTS_QUEUE, {
    connection: p.redis,
    prefix: queuePrefix(p.prefix, OWNER_REPORTS_QUEUE, p.env.REDIS_CLUSTER),
  });
  try {
    const job = await reports.add(OWNER_REPORT_JOB, {
      owner: ownerSchedulerId(owner),
      since: day.toISODate(),
      until: day.plus({ days: 1 }).toISODate(),
    });
    await eventually(
      async () => ((await job.getState()) === "completed" ? true : undefined),
      "the owner's report to go",
    );
  } finally {
    await reports.close();
  }
}

/** A step's record as the store holds it, or undefined. */
export async function stepRecordOf(p: PipelineHarness, eventId: string, stepId: string) {
  return (await p.store.stepRecords(eventId, [stepId])).get(stepId);
}

/**
 * The ledger's counts of the last two hours (and the next) whose field contains `part`: the global
 * ledger's and every shard's, added up as reports add them (shard 0's scope reads them all).
 */
export async function recentLedgerCounts(p: PipelineHarness, part: string) {
  const now = Date.now();
  const counts = sumHours(await p.stores.of(0).ledger.hours(now - 7_200_000, now + 3_600_000));
  return [...counts].filter(([field]) => field.includes(part));
}

/** Waits until a step's record is in `state`; the record. */
export async function waitForState(
  p: PipelineHarness,
  eventId: string,
  stepId: string,
  state: string,
) {
  return eventually(async () => {
    const r = await stepRecordOf(p, eventId, stepId);
    return r?.state === state ? r : undefined;
  }, `${eventId} ${stepId} to be ${state}`);
}

/**
 * Makes a planned step due now. A step due within the promotion horizon has a delayed job: it is
 * promoted. A later one waits in the compact schedule: its job is added as the promoter would add
 * it, minutes early (the promoter itself is tested in promoter.test.ts). Waits for the step first:
 * a test that just published the event may be a moment early.
 */
export async function promoteStep(p: PipelineHarness, eventId: string, stepId: string) {
  const jobId = followUpJobId(eventId, stepId);
  const found = await eventually(async () => {
    const job = await p.followUps.getJob(jobId);
    if (job) return { job, record: undefined };
    const record = (await p.store.stepRecords(eventId, [stepId])).get(stepId);
    return record?.state === "scheduled" ? { job: undefined, record } : undefined;
  }, `the job or schedule entry of ${eventId} ${stepId}`);
  if (found.job) {
    await found.job.promote();
    return;
  }
  const queue = p.followUpQueues[await p.shardOf(eventId)] ?? p.followUps;
  await queue.add(found.record?.channel ?? "follow-up", { e: eventId, s: stepId }, { jobId });
}

/**
 * Where a step waits: as a BullMQ job (due within the promotion horizon), in the compact schedule
 * (a line in the bucket of its due minute), or nowhere.
 */
export async function whereWaiting(
  p: PipelineHarness,
  eventId: string,
  stepId: string,
): Promise<"job" | "schedule" | undefined> {
  if (await p.followUps.getJob(followUpJobId(eventId, stepId))) return "job";
  const record = (await p.store.stepRecords(eventId, [stepId])).get(stepId);
  if (!record) return undefined;
  const keys = new StoreKeys(shardScope(p.prefix, await p.shardOf(eventId), p.shards));
  const bucket = await p.redis.lrange(keys.scheduleBucket(bucketOf(record.dueAt)), 0, -1);
  return bucket.includes(scheduleEntry(eventId, stepId)) ? "schedule" : undefined;
}

/**
 * The follow-ups queues of every shard as one for tests: `getJob` finds a job in whichever shard's
 * queue holds it, `getJobCounts` adds up every shard's; everything else is shard 0's queue.
 */
function anyShardQueue(queues: readonly Queue<FollowUpJobData>[]): Queue<FollowUpJobData> {
  const [first] = queues;
  if (!first) throw new Error("no follow-ups queue");
  if (queues.length === 1) return first;
  return new Proxy(first, {
    get(target, property, receiver) {
      if (property === "getJob")
        return async (jobId: string) => {
          for (const queue of queues) {
            const job = await queue.getJob(jobId);
            if (job) return job;
          }
          return undefined;
        };
      if (property === "getJobCounts")
        return async (...types: Parameters<Queue["getJobCounts"]>) => {
          const total: Record<string, number> = {};
          for (const queue of queues) {
            for (const [type, count] of Object.entries(await queue.getJobCounts(...types)))
              total[type] = (total[type] ?? 0) + count;
          }
          return total;
        };
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** The shard whose event record of `eventId` exists (operations' locator); 0 when none does. */
function shardOfEvent(
  redis: RedisClient,
  prefix: string,
  count: number,
): (eventId: string) => Promise<number> {
  const locate = eventLocator(redis, prefix, count);
  return async (eventId) => (await locate(eventId)) ?? 0;
}

/**
 * A FollowUpStore for tests that finds each event's shard (its record's key exists there, shard 0
 * when none), so a test names events without knowing their customers' shards. Every method takes
 * the event id first.
 */
function locatingStore(redis: RedisClient, prefix: string, count: number): FollowUpStore {
  const stores = shardStores(redis, prefix, count);
  if (count === 1) return stores.of(0).store;
  const shardOf = shardOfEvent(redis, prefix, count);
  const locate = async (eventId: string) => stores.of(await shardOf(eventId)).store;
  return new Proxy(stores.of(0).store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return async (eventId: string, ...rest: unknown[]) => {
        const store = await locate(eventId);
        return (Reflect.get(store, property) as (...args: unknown[]) => unknown).call(
          store,
          eventId,
          ...rest,
        );
      };
    },
  });
}

/**
 * Counts thank-yous against an email cap (5 a day; skipped when capped), so that a thank-you's
 * send holds a frequency-cap slot: for a pipeline started with `startWorker: false`, before
 * `startWorker()`.
 */
export async function capThankYouEmails(p: Pick<PipelineHarness, "configDir">): Promise<void> {
  const rulesFile = path.join(p.configDir, "rules.yaml");
  const doc = parseDocument(await readFile(rulesFile, "utf8"));
  doc.setIn(["frequencyCaps", "email"], doc.createNode([{ max: 5, per: "PT24H" }]));
  doc.setIn(["whenCapped", "thank-you"], "skip");
  await writeFile(rulesFile, doc.toString());
}
