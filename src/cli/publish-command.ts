import { randomBytes } from "node:crypto";
import { DateTime, Duration } from "luxon";
import type { Env } from "../config/env.js";
import { eventFingerprint } from "../domain/event-fingerprint.js";
import {
  contractLength,
  describeProblems,
  type EventProblem,
  type FollowUpEvent,
  MAX_ID_LENGTH,
  parseEvent,
} from "../domain/events.js";
import { EventIdConflictError, EventPublisher, InvalidEventError } from "../publisher.js";
import { PURCHASE_EVENTS_QUEUE, queuePrefix } from "../queue/names.js";
import { DeploymentEventIds, EventIdRegistry, idTakenByAnother } from "../store/event-ids.js";
import { shardScope } from "../store/keys.js";
import type { RedisClient } from "../store/redis-client.js";
import { Shards } from "../store/shards.js";
import { commandConnection, commandEnv, commandShards, refuseIfMoved } from "./command-redis.js";
import {
  CommandError,
  type CommandIo,
  EXIT,
  namesOffset,
  parseJsonLine,
  parseJsonText,
  readInput,
} from "./io.js";
import { terminalText } from "./operator-text.js";

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
  // One suffix for the run: an event the file holds twice stays one event under its new id.
  const idSuffix = options.newId === true ? `-${randomBytes(4).toString("hex")}` : undefined;
  const files = parseEvents(await readInput(file), file);
  const events = files.map((event) => restamp(event, occurredAt, idSuffix));
  if (events.length === 0) {
    io.err(`${file} holds no events: nothing published\n`);
    return EXIT.ok;
  }
  const { redis } = await commandConnection(read);
  await refuseIfMoved(redis, env.QUEUE_PREFIX);
  const takenIn = await takenInLookup(redis, env);
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
    // Each id once in the file, unless for the same event (a repeat is a no-op, as a retry is).
    const seen = new Map<string, { index: number; fingerprint: string }>();
    for (const [index, event] of events.entries()) {
      const parsed = parseEvent(event, { now });
      if (!parsed.ok) {
        const described = parsed.problems.map((problem) =>
          suffixProblem(problem, files[index], idSuffix),
        );
        problems.push(`event ${index + 1}:\n${describeProblems(described)}`);
        continue;
      }
      const fingerprint = eventFingerprint(parsed.event);
      const first = seen.get(parsed.event.id);
      if (first) {
        if (first.fingerprint !== fingerprint)
          problems.push(
            `event ${index + 1}: id ${parsed.event.id} is event ${first.index + 1}'s, with other content`,
          );
        continue;
      }
      seen.set(parsed.event.id, { index, fingerprint });
      if (await takenIn(parsed.event))
        problems.push(
          `event ${index + 1}: id ${parsed.event.id} was taken in already for another event (a new event needs a new id; --new-id makes one)`,
        );
      else if (await publisher.conflicts(event as never))
        problems.push(
          `event ${index + 1}: id ${parsed.event.id} waits in the queue already with other content (a new event needs a new id; --new-id makes one)`,
        );
    }
    if (problems.length > 0)
      throw new CommandError(`${file}: nothing published\n${problems.join("\n")}`);
    for (const event of events) {
      const { eventId, jobId } = await publisher.publish(event as never);
      io.out(
        terminalText(
          `published ${eventId} to ${queuePrefix(env.QUEUE_PREFIX, PURCHASE_EVENTS_QUEUE, env.REDIS_CLUSTER)}:${PURCHASE_EVENTS_QUEUE} (job ${jobId})\n`,
        ),
      );
    }
  } catch (error) {
    // Raced: another publisher took an id between the check and the publish.
    if (error instanceof InvalidEventError || error instanceof EventIdConflictError)
      throw new CommandError(error.message);
    throw error;
  } finally {
    await publisher.close();
    redis.disconnect();
  }
  return EXIT.ok;
}

/**
 * Whether the workers took an event's id for another event (its job may be gone): the worker
 * would refuse this one after the command said it was published. As POST /v1/events looks it up.
 */
async function takenInLookup(
  redis: RedisClient,
  env: Env,
): Promise<(event: FollowUpEvent) => Promise<boolean>> {
  try {
    const count = await commandShards(redis, env);
    const shards = new Shards(count, (shard) => ({
      eventIds: new EventIdRegistry(redis, shardScope(env.QUEUE_PREFIX, shard, count)),
    }));
    const deploymentIds = count > 1 ? new DeploymentEventIds(redis, env.QUEUE_PREFIX) : undefined;
    return (event) => idTakenByAnother(event, shards, deploymentIds);
  } catch (error) {
    redis.disconnect();
    throw error;
  }
}

function parseEvents(text: string, source: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  if (trimmed.startsWith("[")) {
    const events = parseJsonText(trimmed, source);
    if (!Array.isArray(events)) throw new CommandError(`${source}: not valid JSON`);
    return events;
  }
  const lines = text.split("\n");
  const filled = lines.filter((line) => line.trim() !== "");
  // NDJSON: every line an object, or the first one a whole event on its own (then a line that is
  // not, "garbage" say, is named by its number rather than by a position in the whole file).
  const firstLine = filled[0]?.trim() ?? "";
  const ndjson =
    filled.every((line) => line.trim().startsWith("{")) ||
    (firstLine.startsWith("{") && "value" in parseJsonLine(firstLine));
  if (filled.length > 1 && ndjson) {
    const events: unknown[] = [];
    for (const [index, line] of lines.entries()) {
      if (line.trim() === "") continue;
      const read = parseJsonLine(line);
      if ("value" in read) {
        events.push(read.value);
        continue;
      }
      // Not NDJSON after all if the whole text is one (pretty-printed) event.
      try {
        JSON.parse(trimmed);
      } catch {
        throw new CommandError(`${source}:${index + 1}: ${read.problem}`);
      }
      return [parseJsonText(trimmed, source)];
    }
    return events;
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
  if (!text.startsWith("-") && at.isValid && namesOffset(text))
    return at.toISO({ suppressMilliseconds: true }) ?? "";
  throw new CommandError(
    `--occurred-at: expected an ISO date-time with an offset (2026-11-23T09:00:00Z), now, or a negative duration such as -PT2H, got ${JSON.stringify(text)}`,
    EXIT.usage,
  );
}

function restamp(event: unknown, occurredAt: string | undefined, idSuffix?: string): unknown {
  if (!event || typeof event !== "object" || Array.isArray(event)) return event;
  const record = event as Record<string, unknown>;
  const id = idOf(event);
  return {
    ...record,
    ...(occurredAt !== undefined && { occurredAt }),
    // The id as the contract reads it (trimmed), so the suffix is not put after white space; a
    // blank id is left blank, to be refused as one.
    ...(idSuffix !== undefined && id !== undefined && id !== "" && { id: id + idSuffix }),
  };
}

/** An event's id as the contract reads it (trimmed), if it is a string. */
function idOf(event: unknown): string | undefined {
  const id = (event as { id?: unknown } | null)?.id;
  return typeof id === "string" ? id.trim() : undefined;
}

/**
 * The refusal of an id that fits on its own but not with --new-id's suffix, saying so: the file's
 * id is within the limit, and "at most 200 characters" alone would send the operator to it.
 */
function suffixProblem(problem: EventProblem, event: unknown, idSuffix?: string): EventProblem {
  const id = idOf(event);
  if (problem.path !== "id" || idSuffix === undefined || id === undefined) return problem;
  // Counted as the contract counts (an emoji one character).
  const length = contractLength(id);
  if (id === "" || length > MAX_ID_LENGTH) return problem;
  return {
    path: problem.path,
    message: `${length} characters, and ${length + idSuffix.length} with --new-id's suffix ${idSuffix}; ${problem.message} with it (at most ${MAX_ID_LENGTH - idSuffix.length} without)`,
  };
}
