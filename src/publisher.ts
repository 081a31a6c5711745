import { Queue } from "bullmq";
import { Redis } from "ioredis";
import {
  describeProblems,
  type EventProblem,
  type FollowUpEventInput,
  parseEvent,
} from "./domain/events.js";
import { eventJobId, PURCHASE_EVENTS_QUEUE } from "./queue/names.js";

/** Thrown by EventPublisher.publish for an event that breaks contract v1; nothing is enqueued. */
export class InvalidEventError extends Error {
  constructor(readonly problems: readonly EventProblem[]) {
    super(`invalid event:\n${describeProblems(problems)}`);
    this.name = "InvalidEventError";
  }
}

export interface PublisherOptions {
  /** An ioredis connection (shared with your service) or a redis:// URL. */
  readonly connection: Redis | string;
  /** Key prefix of the follow-ups deployment; QUEUE_PREFIX of the worker. Default `followups`. */
  readonly prefix?: string;
}

/**
 * The typed publisher for Node services: validates an event against contract v1 before it is
 * enqueued, names the job after the event type, and uses the event id as job id so a retried
 * publish does not enqueue the same event twice while it is still in the queue.
 */
export class EventPublisher {
  private readonly queue: Queue;
  /** A connection this publisher opened itself (from a URL) and so must close. */
  private readonly ownConnection?: Redis;

  constructor(options: PublisherOptions) {
    if (typeof options.connection === "string") {
      this.ownConnection = new Redis(options.connection, { maxRetriesPerRequest: null });
    }
    const connection = this.ownConnection ?? (options.connection as Redis);
    this.queue = new Queue(PURCHASE_EVENTS_QUEUE, {
      connection,
      prefix: options.prefix ?? "followups",
    });
  }

  /** Validates and enqueues one event; returns the job id it was enqueued under. */
  async publish(event: FollowUpEventInput): Promise<{ eventId: string; jobId: string }> {
    const parsed = parseEvent(event);
    if (!parsed.ok) throw new InvalidEventError(parsed.problems);
    const jobId = eventJobId(parsed.event.id);
    await this.queue.add(parsed.event.type, event, { jobId });
    return { eventId: parsed.event.id, jobId };
  }

  async close(): Promise<void> {
    await this.queue.close();
    await this.ownConnection?.quit();
  }
}
