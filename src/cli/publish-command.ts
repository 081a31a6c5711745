import { randomBytes } from "node:crypto";
import { DateTime, Duration } from "luxon";
import { describeProblems, parseEvent } from "../domain/events.js";
import { EventPublisher, InvalidEventError } from "../publisher.js";
import { PURCHASE_EVENTS_QUEUE, queuePrefix } from "../queue/names.js";
import { commandConnection, commandEnv } from "./command-redis.js";
import { CommandError, type CommandIo, EXIT, parseJsonText, readInput } from "./io.js";

/**
 * `followups publish EVENT.json` (or `-`): validates and enqueues events for shells and scripts.
 * The file holds one event, a JSON array of events, or one event per line (NDJSON). Nothing is
 * enqueued unless every event is valid.
 */
export interface PublishOptions {
  /** Replace each event's occurredAt: an ISO date-time, `now`, or a negative duration (`-PT2H`). */
  readonly occurredAt?: string;
  /** Append a random suffix to each event id, so a sample can be published again and again. */
  readonly newId?: boolean;
}

export async function runPublish(
  file: string,
  options: PublishOptions,
  io: CommandIo,
): Promise<number> {
  const read = await commandEnv();
  const { env } = read;
  const occurredAt =
    options.occurredAt === undefined ? undefined : resolveOccurredAt(options.occurredAt);
  const events = parseEvents(await readInput(file), file).map((event) =>
    restamp(event, occurredAt, options.newId === true),
  );
  const { redis } = await commandConnection(read);
  const publisher = new EventPublisher({
    connection: redis,
    prefix: env.QUEUE_PREFIX,
    cluster: env.REDIS_CLUSTER,
    clock: DateTime.utc,
  });
  try {
    const problems: string[] = [];
    // The publisher judges `occurredAt` against this clock too: nothing is enqueued unless all pass.
    const now = DateTime.utc();
    events.forEach((event, index) => {
      const parsed = parseEvent(event, { now });
      if (!parsed.ok) problems.push(`event ${index + 1}:\n${describeProblems(parsed.problems)}`);
    });
    if (problems.length > 0)
      throw new CommandError(`${file}: nothing published\n${problems.join("\n")}`);
    for (const event of events) {
      const { eventId, jobId } = await publisher.publish(event as never);
      io.out(
        `published ${eventId} to ${queuePrefix(env.QUEUE_PREFIX, PURCHASE_EVENTS_QUEUE, env.REDIS_CLUSTER)}:${PURCHASE_EVENTS_QUEUE} (job ${jobId})\n`,
      );
    }
  } catch (error) {
    if (error instanceof InvalidEventError) throw new CommandError(error.message);
    throw error;
  } finally {
    await publisher.close();
    redis.disconnect();
  }
  return EXIT.ok;
}

function parseEvents(text: string, source: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) return parseJsonText(trimmed, source) as unknown[];
  const lines = trimmed.split("\n").filter((line) => line.trim() !== "");
  if (lines.length > 1 && lines.every((line) => line.trim().startsWith("{"))) {
    try {
      return lines.map((line) => JSON.parse(line));
    } catch {
      // Not NDJSON after all: a pretty-printed single event.
    }
  }
  return [parseJsonText(trimmed, source)];
}

/** Reads `--occurred-at`: an ISO date-time, `now`, or a negative ISO duration meaning "that long ago". */
function resolveOccurredAt(text: string): string {
  const now = DateTime.utc().startOf("second");
  if (text === "now") return now.toISO({ suppressMilliseconds: true }) ?? "";
  if (text.startsWith("-P")) {
    const ago = Duration.fromISO(text.slice(1));
    if (ago.isValid) return now.minus(ago).toISO({ suppressMilliseconds: true }) ?? "";
  }
  const at = DateTime.fromISO(text, { setZone: true });
  if (!text.startsWith("-") && at.isValid) return at.toISO({ suppressMilliseconds: true }) ?? "";
  throw new CommandError(
    `--occurred-at: expected an ISO date-time, now, or a negative duration such as -PT2H, got ${JSON.stringify(text)}`,
    EXIT.usage,
  );
}

function restamp(event: unknown, occurredAt: string | undefined, newId: boolean): unknown {
  if (!event || typeof event !== "object" || Array.isArray(event)) return event;
  const record = event as Record<string, unknown>;
  return {
    ...record,
    ...(occurredAt !== undefined && { occurredAt }),
    ...(newId &&
      typeof record.id === "string" && { id: `${record.id}-${randomBytes(4).toString("hex")}` }),
  };
}
