/**
 * What a Redis error says (unanswered, connection lost, not serving now, writes refused), from
 * the error alone: no ioredis loaded, so a command's error handling (cli.ts) costs nothing to load.
 */
/** Whether an error is a command's that Redis did not answer within its bound (boundCommands). */
export function isCommandTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === "Command timed out";
}

/** Errors with which ioredis says Redis cannot be reached or does not answer in time. */
const AWAY_MESSAGES =
  /^(Command timed out|Connection is closed|Stream isn't writeable|Reached the max retries|Failed to refresh slots cache|None of startup nodes is available)/;
/**
 * Replies with which Redis says it cannot serve now: loading, failing over, a slot moving, or
 * refusing writes until an operator acts (OOM: maxmemory reached under noeviction; MISCONF: it
 * cannot save its snapshot), after which the same command succeeds.
 */
const NOT_NOW_REPLIES =
  /^(LOADING|CLUSTERDOWN|TRYAGAIN|READONLY|MASTERDOWN|BUSY|NOREPLICAS|OOM|MISCONF) /;

/** Replies with which Redis refuses every write until an operator frees memory or disk. */
const WRITES_REFUSED = /^(OOM|MISCONF) /;

/** Socket errors of a connection refused, broken or timed out (Node's codes). */
const LOST_CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

/**
 * Whether an error says the connection to Redis is lost or cannot be made (refused, broken, timed
 * out, or a command that could not be sent for it), as opposed to a reply of Redis itself.
 */
export function isConnectionLoss(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined && LOST_CONNECTION_CODES.has(code)) return true;
  if (error.name === "MaxRetriesPerRequestError" || error.name === "ClusterAllFailedError")
    return true;
  return AWAY_MESSAGES.test(error.message);
}

/**
 * The replies an error carries: its own message, and for a transaction Redis discarded
 * (`EXECABORT`), the errors of the commands queued in it, which say why (ioredis gathers them
 * in `previousErrors`). A MULTI under a Redis out of memory fails as EXECABORT, its OOM inside.
 */
function repliesOf(error: Error): string[] {
  const previous = (error as { previousErrors?: unknown }).previousErrors;
  if (!error.message.startsWith("EXECABORT ") || !Array.isArray(previous)) return [error.message];
  return [
    error.message,
    ...previous.flatMap((inner) => (inner instanceof Error ? [inner.message] : [])),
  ];
}

/** Whether Redis refused a command because it takes no writes now (out of memory, cannot save). */
export function isWriteRefusal(error: unknown): boolean {
  return error instanceof Error && repliesOf(error).some((reply) => WRITES_REFUSED.test(reply));
}

/**
 * Whether an error says Redis is away or cannot serve right now (a caller answers 503 and asks
 * for a retry), rather than a fault of the request or a bug; also when the connection is down.
 */
export function isRedisUnavailable(error: unknown, redis?: { readonly status: string }): boolean {
  if (redis && redis.status !== "ready") return true;
  if (!(error instanceof Error)) return false;
  if (error.name === "MaxRetriesPerRequestError" || error.name === "ClusterAllFailedError")
    return true;
  if (AWAY_MESSAGES.test(error.message)) return true;
  return repliesOf(error).some((reply) => NOT_NOW_REPLIES.test(reply));
}

/**
 * A rejection handler that passes over an error with what `fallback` gives, but throws on those
 * that say Redis is away or cannot serve now (isRedisUnavailable: a command timed out, the
 * connection lost, LOADING, BUSY, …). For reads a caller may go without (a job removed meanwhile,
 * a record in a format it cannot read): waiting out a command timeout for each of them, one after
 * another, held a command for many timeouts on a frozen Redis, and its answer then lacked them.
 */
export function unlessRedisAway<T>(fallback: (error: unknown) => T): (error: unknown) => T {
  return (error) => {
    if (isRedisUnavailable(error)) throw error;
    return fallback(error);
  };
}
