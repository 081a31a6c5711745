/**
 * The Redis connections of this process's one-shot command, as cli.ts's error handling needs them
 * (closing them, naming the Redis that left a command unanswered). Apart from command-redis.ts,
 * and without ioredis: every command's error handling loads this, whether it connects or not.
 */
import { isCommandTimeout } from "../store/redis-errors.js";

/** What of a connection this module uses (an ioredis Redis or Cluster). */
interface TrackedConnection {
  disconnect(): void;
  once(event: "end", listener: () => void): unknown;
}

/** The connections this process's command opened and has not closed, and how messages name them. */
const connected = new Map<
  TrackedConnection,
  { readonly where: string; readonly commandMs: number }
>();

/** Records a connection the command opened, until it ends; `where` names it without credentials. */
export function trackConnection(redis: TrackedConnection, where: string, commandMs: number): void {
  connected.set(redis, { where, commandMs });
  redis.once("end", () => connected.delete(redis));
}

/**
 * Closes every connection the command still holds: after a failure, a connection to a frozen
 * Redis (its socket open, nothing answered) would keep the process from ending.
 */
export function disconnectCommandConnections(): void {
  for (const redis of [...connected.keys()]) redis.disconnect();
  connected.clear();
}

/**
 * The one line a command ends with when Redis left one of its commands unanswered for its bound
 * (a Redis frozen, or paused, after the command connected), naming the Redis; undefined for
 * another error.
 */
export function unansweredText(error: unknown): string | undefined {
  if (!isCommandTimeout(error)) return undefined;
  const open = [...connected.values()];
  const where = open.map((redis) => redis.where).join(" or ") || "REDIS_URL";
  const seconds = Math.max(...open.map((redis) => redis.commandMs), 0) / 1000;
  return `followups: Redis at ${where} did not answer within ${seconds} s; the command stopped there: run it again once Redis answers (REDIS_COMMAND_TIMEOUT_MS sets the wait)`;
}
