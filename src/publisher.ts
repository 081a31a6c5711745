import { type Job, Queue } from "bullmq";
import { DateTime } from "luxon";
import { eventFingerprint } from "./domain/event-fingerprint.js";
import {
  contractInput,
  describeProblems,
  type EventProblem,
  type FollowUpEvent,
  type FollowUpEventInput,
  parseEvent,
} from "./domain/events.js";
import {
  eventInputOfJob,
  eventJobId,
  INVALID_EVENT_REASON,
  PURCHASE_EVENTS_QUEUE,
  queuePrefix,
  REUSED_ID,
} from "./queue/names.js";
import {
  type ConnectionNames,
  clusterRefusal,
  createRedisClient,
  databaseMissing,
  isCluster,
  type RedisClient,
} from "./store/redis-client.js";

/** How the publisher's settings are named when its connection does not fit the Redis. */
const PUBLISHER_CONNECTION: ConnectionNames = {
  url: "the publisher's URL",
  cluster: "cluster: true",
  turnOn: "give the publisher cluster: true (or an ioredis Cluster as its connection)",
  turnOff: "leave out cluster: true",
};

/** Thrown by EventPublisher.publish for an event that breaks contract v1; nothing is enqueued. */
export class InvalidEventError extends Error {
  constructor(readonly problems: readonly EventProblem[]) {
    super(`invalid event:\n${describeProblems(problems)}`);
    this.name = "InvalidEventError";
  }
}

/**
 * Thrown by EventPublisher.publish when the event's id names another event still in the queue;
 * nothing is enqueued. (One the worker has already taken fails there with the same words.)
 */
export class EventIdConflictError extends Error {
  constructor(readonly eventId: string) {
    super(`event id reused with different content: ${eventId}`);
    this.name = "EventIdConflictError";
  }
}

export interface PublisherOptions {
  /**
   * An ioredis connection (shared with your service: a Redis, or a Cluster) or a redis:// URL
   * (with `cluster`, the comma-separated seed nodes of a Redis Cluster).
   */
  readonly connection: RedisClient | string;
  /** Key prefix of the follow-ups deployment; QUEUE_PREFIX of the worker. Default `followups`. */
  readonly prefix?: string;
  /**
   * Whether followups runs on a Redis Cluster (REDIS_CLUSTER of the worker): the input queue's
   * prefix is then the hash tag `{<prefix>}`. Default: whether `connection` is an ioredis Cluster.
   */
  readonly cluster?: boolean;
  /**
   * The clock an event's occurredAt is checked against (more than a day after it is refused).
   * Default: this machine's clock.
   */
  readonly clock?: () => DateTime;
  /**
   * Connection errors of the publisher's queue (a publish while Redis is away rejects anyway).
   * Default: ignored, instead of BullMQ printing them to the console.
   */
  readonly onError?: (error: Error) => void;
}

/**
 * The typed publisher for Node services: validates an event against contract v1 before it is
 * enqueued, names the job after the event type, and uses the event id as job id so a retried
 * publish does not enqueue the same event twice while it is still in the queue.
 */
export class EventPublisher {
  private readonly queue: Queue;
  /** A connection this publisher opened itself (from a URL) and so must close. */
  private readonly ownConnection?: RedisClient;
  /** The URL of the own connection. */
  private readonly url?: string;
  /** The connection the queue uses, given or own. */
  private readonly connection: RedisClient;
  private readonly clock: () => DateTime;
  /** The check of the connection (cluster mode, database), made before the first event is enqueued. */
  private connectionChecked?: Promise<void>;

  constructor(options: PublisherOptions) {
    const cluster =
      options.cluster ?? (typeof options.connection !== "string" && isCluster(options.connection));
    if (typeof options.connection === "string") {
      this.url = options.connection;
      this.ownConnection = createRedisClient(options.connection, cluster, {
        maxRetriesPerRequest: null,
      });
    }
    const connection = this.ownConnection ?? (options.connection as RedisClient);
    this.connection = connection;
    this.clock = options.clock ?? (() => DateTime.utc());
    this.queue = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection,
      prefix: queuePrefix(options.prefix ?? "followups", PURCHASE_EVENTS_QUEUE, cluster),
      // The workers keep the queue's metadata; a publisher writes nothing before its first event
      // (nor anything at all where its URL turns out wrong, databaseCheck).
      skipMetasUpdate: true,
    });
    this.queue.on("error", options.onError ?? (() => {}));
  }

  /**
   * Validates and enqueues one event as contract v1 (keys the contract does not know are dropped);
   * returns the job id it was enqueued under. Publishing the same event again while it waits or
   * after it was taken in is a no-op; after its intake failed on every attempt, it is tried again.
   * Another event under the same id throws EventIdConflictError.
   */
  async publish(event: FollowUpEventInput): Promise<{ eventId: string; jobId: string }> {
    const parsed = parseEvent(event, { now: this.clock() });
    const input = contractInput(event);
    if (!parsed.ok || !input) throw new InvalidEventError(parsed.ok ? [] : parsed.problems);
    const eventId = parsed.event.id;
    const jobId = eventJobId(eventId);
    await this.connectionCheck();
    const queued = await this.queue.getJob(jobId);
    if (queued && (await refusedWithoutId(queued))) {
      // It holds no event (intake refused it before taking its id): this one replaces it.
      await queued.remove();
    } else if (queued) {
      if (!sameEvent(queued.name, queued.data, parsed.event))
        throw new EventIdConflictError(eventId);
      if (await queued.isFailed()) await queued.retry("failed", { resetAttemptsStarted: true });
      return { eventId, jobId };
    }
    await this.queue.add(parsed.event.type, input, { jobId });
    // BullMQ adds nothing, silently, under an id another publisher took since the look-up above
    // (two publishes of one id at once): this event would be lost. What the job holds now says.
    await this.refuseIfAnotherWon(jobId, input, parsed.event);
    return { eventId, jobId };
  }

  /**
   * Throws EventIdConflictError when the job under `jobId` holds another event than `input`
   * (the same JSON is this event). A job already gone was taken in.
   */
  private async refuseIfAnotherWon(
    jobId: string,
    input: FollowUpEventInput,
    event: FollowUpEvent,
  ): Promise<void> {
    const stored = await this.queue.getJob(jobId);
    if (!stored || JSON.stringify(stored.data) === JSON.stringify(input)) return;
    if (!sameEvent(stored.name, stored.data, event)) throw new EventIdConflictError(event.id);
  }

  /**
   * Whether publishing `event` would throw EventIdConflictError now: another event waits under its
   * id. (A check before publishing several, so that none is enqueued when one would be refused.)
   */
  async conflicts(event: FollowUpEventInput): Promise<boolean> {
    const parsed = parseEvent(event, { now: this.clock() });
    if (!parsed.ok) return false;
    const queued = await this.queue.getJob(eventJobId(parsed.event.id));
    return (
      queued !== undefined &&
      !sameEvent(queued.name, queued.data, parsed.event) &&
      !(await refusedWithoutId(queued))
    );
  }

  /**
   * Where the workers would never take the events, every publish throws instead: a connection to
   * a Redis Cluster node without cluster mode (Redis refuses the queue's untagged keys with
   * CROSSSLOT or MOVED), cluster mode against a single Redis (which would be waited for without
   * end), or a URL naming a database Redis does not have (ioredis reports the refused SELECT only
   * as an error event and goes on in database 0). Such a problem is remembered; a check that
   * could not be made (Redis busy, loading or away) is not: the next publish checks again.
   */
  private connectionCheck(): Promise<void> {
    this.connectionChecked ??= this.connectionProblem().then(
      (problem) => {
        if (problem) throw new Error(problem);
      },
      (error: unknown) => {
        this.connectionChecked = undefined;
        throw error;
      },
    );
    return this.connectionChecked;
  }

  private async connectionProblem(): Promise<string | undefined> {
    const connection = this.connection;
    // A given Cluster was connected by its owner; an own one, from seed URLs that may not be one.
    if (isCluster(connection))
      return this.url === undefined
        ? undefined
        : clusterRefusal(this.url, PUBLISHER_CONNECTION, false);
    // A Redis whose ACL forbids INFO is taken as it is.
    const info = await connection.info("cluster").catch(() => "");
    if (/cluster_enabled:1/.test(info))
      return `the publisher's Redis is a Redis Cluster node: ${PUBLISHER_CONNECTION.turnOn}`;
    return this.ownConnection ? databaseMissing(connection, "the publisher's Redis") : undefined;
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.ownConnection?.quit();
  }
}

/**
 * Whether a queued job failed before intake took its id, so it names no event: what it holds is
 * not a valid event (added by hand, or by a client that does not validate), or was refused as
 * one all the same (an occurredAt more than a day ahead of intake's clock), or its id is another
 * event's (REUSED_ID: the id stays that one's, and publishing that one again is a repeat). A
 * job cut to its id (isCutToId) was taken in. The event published under its id replaces it: a
 * corrected one is taken in, the refused one again is refused again.
 */
async function refusedWithoutId(job: Job): Promise<boolean> {
  if (isCutToId(job.data)) return false;
  if (!parseEvent(eventInputOfJob(job.name, job.data)).ok) return job.isFailed();
  const reason = job.failedReason ?? "";
  return (
    (reason.startsWith(INVALID_EVENT_REASON) || reason.startsWith(`${REUSED_ID}: `)) &&
    job.isFailed()
  );
}

/** Job data intake cut to the event's type and id (intake-processor: nothing personal kept). */
function isCutToId(data: unknown): data is { type?: string; id: string } {
  if (!data || typeof data !== "object") return false;
  const keys = Object.keys(data);
  return (
    keys.length <= 2 &&
    typeof (data as { id?: unknown }).id === "string" &&
    keys.every((key) => key === "id" || key === "type")
  );
}

/**
 * Whether a queued job (name = type; data may leave the type out) holds this same event. A job
 * whose data intake cut to the type and id (an erasure, a purchase of an erased customer: nothing
 * personal is kept) holds it when those match: what else it held is gone.
 */
function sameEvent(name: string, data: unknown, event: FollowUpEvent): boolean {
  if (isCutToId(data)) return data.id === event.id && (data.type ?? name) === event.type;
  const queued = parseEvent(eventInputOfJob(name, data));
  return queued.ok && eventFingerprint(queued.event) === eventFingerprint(event);
}
