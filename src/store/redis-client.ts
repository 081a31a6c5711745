import { connect } from "node:net";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { isRedisUnavailable } from "./redis-errors.js";

// The error predicates live apart (no ioredis to load); kept importable from here.
export {
  isCommandTimeout,
  isConnectionLoss,
  isRedisUnavailable,
  isWriteRefusal,
  unlessRedisAway,
} from "./redis-errors.js";

/**
 * A connection to one Redis, or to a Redis Cluster (`REDIS_CLUSTER=true`). The store works on
 * either: every script and transaction touches keys of one slot (see KeySpace in keys.ts).
 */
export type RedisClient = Redis | Cluster;

/**
 * Opens a client for REDIS_URL: one Redis, or with `cluster` a Redis Cluster whose seed nodes are
 * the comma-separated URLs (username, password and TLS taken from the first; the other nodes are
 * found from the seeds). `options` apply to every node's connection.
 */
export function createRedisClient(
  url: string,
  cluster: boolean,
  options: RedisOptions = {},
): RedisClient {
  if (!cluster) return new Redis(url, options);
  const seeds = url.split(",").map((part) => new URL(part.trim()));
  const first = seeds[0];
  if (!first) throw new Error("REDIS_URL names no node");
  const { lazyConnect, enableOfflineQueue, retryStrategy, ...nodeOptions } = options;
  return new Cluster(
    seeds.map((seed) => ({ host: seed.hostname, port: Number(seed.port || 6379) })),
    {
      ...(lazyConnect !== undefined && { lazyConnect }),
      ...(enableOfflineQueue !== undefined && { enableOfflineQueue }),
      ...(retryStrategy && { clusterRetryStrategy: (times: number) => retryStrategy(times) }),
      // While a master fails over, nodes still redirect (MOVED) to it for a few seconds: wait
      // between redirections instead of giving up after 16 in a row within milliseconds.
      retryDelayOnMoved: 100,
      retryDelayOnFailover: 200,
      maxRedirections: 150,
      // ioredis looks seed host names up and connects to the address, whose TLS certificate
      // names the host (a managed cluster's): connecting by name lets the certificate match.
      ...(first.protocol === "rediss:" && {
        dnsLookup: (address: string, found: (error: null, address: string) => void) =>
          found(null, address),
      }),
      redisOptions: {
        ...nodeOptions,
        ...(first.username && { username: decodeURIComponent(first.username) }),
        ...(first.password && { password: decodeURIComponent(first.password) }),
        ...(first.protocol === "rediss:" && { tls: {} }),
      },
    },
  );
}

/**
 * Bounds every command sent from now on: one unanswered for `ms` fails with ioredis's "Command
 * timed out" (its commandTimeout), on each node of a cluster, also the nodes found later, and on
 * connections duplicated from this one. Set once connected, so that connecting keeps its own bound.
 */
export function boundCommands(redis: RedisClient, ms: number): void {
  if (!isCluster(redis)) {
    redis.options.commandTimeout = ms;
    return;
  }
  const bound = (node: Redis) => {
    node.options.commandTimeout = ms;
  };
  for (const node of redis.nodes("all")) bound(node);
  redis.on("+node", bound);
  redis.options.redisOptions = { ...redis.options.redisOptions, commandTimeout: ms };
}

/** Another connection like `redis` (BullMQ's workers block on connections of their own). */
export function duplicateClient(redis: RedisClient): RedisClient {
  return redis instanceof Cluster ? redis.duplicate() : redis.duplicate();
}

/**
 * A connection of its own for watching whether Redis answers (watchRedisAnswers), like `redis`
 * (same nodes, credentials, TLS, database) and connecting at once: a connection runs its commands
 * one after another, so a PING on the worker's own waited behind a long pipeline or a blocking
 * command and read as Redis frozen. No command timeout (the watch keeps its own time) and no
 * offline queue: while it is down nothing is sent, and a PING in flight as it drops fails at once
 * instead of being sent again. On a cluster its nodes' connections are the watch's own as well,
 * and it asks the cluster which nodes are masters every `refreshMs`: it sends no command that a
 * redirection (MOVED) would tell of a failover, and a frozen master replaced by its replica would
 * otherwise stay the one it watches.
 */
export function watchClient(redis: RedisClient, refreshMs: number): RedisClient {
  const watch: RedisClient = isCluster(redis)
    ? redis.duplicate([], {
        lazyConnect: false,
        slotsRefreshInterval: refreshMs,
        // Ready once it knows the masters, whatever the cluster's state: a shard down (a frozen
        // master, the cluster's state fail) is what the watch is for.
        enableReadyCheck: false,
        redisOptions: { commandTimeout: undefined },
      })
    : redis.duplicate({
        lazyConnect: false,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: undefined,
      });
  watch.on("error", () => {
    // Said by the worker's own connections' listeners; an unanswered PING by the watch.
  });
  return watch;
}

/**
 * Drops a connection at once. ioredis's disconnect() ends the socket and keeps it until the
 * server closes its side, for up to its disconnectTimeout (2 s): a server that accepted the
 * connection but answers nothing (frozen, overloaded) never closes it, and the open socket held
 * the process, and whatever waited for the connection to close, those 2 s.
 */
export function dropConnection(redis: RedisClient): void {
  const nodes = isCluster(redis) ? redis.nodes("all") : [redis];
  redis.disconnect();
  for (const node of nodes) node.stream?.destroy();
}

/**
 * Whether Redis serves now: a single Redis answers PING; on a cluster, a master reports
 * `cluster_state:ok`. Every master the client knows is asked at once, and the first that answers
 * ok decides (a dead one the client has not yet dropped may never answer). While a shard has no
 * master (a failover under way, or a master and its replicas down), the others report `fail` and
 * refuse its keys, though each still answers PING.
 */
export async function servesNow(redis: RedisClient): Promise<boolean> {
  if (!isCluster(redis)) return (await redis.ping()) === "PONG";
  const ok = (master: Redis) =>
    master
      .cluster("INFO")
      .then(
        (info) =>
          /^cluster_state:ok\b/m.test(String(info)) ||
          Promise.reject(new Error("cluster_state is not ok")),
      );
  // Rejected (false) once every master has answered otherwise or failed; none known: false.
  return Promise.any(redis.nodes("master").map(ok)).catch(() => false);
}

/**
 * A script that writes nothing but does not declare so (no `no-writes` flag): Redis 7 refuses it
 * as it refuses any write (OOM, MISCONF, READONLY on a replica), where a PING still answers.
 */
const WRITE_PROBE = "#!lua\nreturn 1";

/**
 * Whether Redis takes writes now; on a cluster, every master the client knows. False only when
 * a node refuses (out of memory, cannot save, a replica) or cannot serve; other errors are not
 * taken as a refusal.
 */
export async function acceptsWrites(redis: RedisClient): Promise<boolean> {
  const nodes: readonly (Redis | Cluster)[] = isCluster(redis) ? redis.nodes("master") : [redis];
  const answers = await Promise.all(
    nodes.map((node) =>
      node.eval(WRITE_PROBE, 0).then(
        () => true,
        (error: unknown) => !isRedisUnavailable(error),
      ),
    ),
  );
  return answers.every(Boolean);
}

/** Whether a connection goes to a Redis Cluster. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * The TTL to RESTORE a copy of a key with, from the PTTL of the original (not -2: gone): 0 (no
 * expiry) for a key without one; else what is left, at least 1 ms. PTTL answers 0 for a key in its
 * last millisecond, which RESTORE would take for no expiry: a key about to expire would become
 * one that never does.
 */
export function restoreTtl(pttl: number): number {
  return pttl === -1 ? 0 : Math.max(pttl, 1);
}

/**
 * How the settings of a connection are named in what is said about it: the environment's
 * variables for the worker and most commands, a command's flags where it connects to a Redis
 * named on its command line (`followups migrate --to-url`).
 */
export interface ConnectionNames {
  /** The setting that holds the URL (never the URL itself: it may carry a password). */
  readonly url: string;
  /** The setting that turned cluster mode on. */
  readonly cluster: string;
  /** What turns cluster mode on. */
  readonly turnOn: string;
  /** What turns cluster mode off. */
  readonly turnOff: string;
}

/** The environment's names: REDIS_URL and REDIS_CLUSTER. */
export const ENV_CONNECTION: ConnectionNames = {
  url: "REDIS_URL",
  cluster: "REDIS_CLUSTER=true",
  turnOn: "set REDIS_CLUSTER=true (REDIS_URL may list several nodes, comma-separated)",
  turnOff: "unset REDIS_CLUSTER",
};

/**
 * Why a client cannot work with the server it reached, or undefined: cluster mode against a
 * single Redis, or a cluster node used as a single Redis (keys of other nodes would fail with
 * MOVED at random), or a database number the single Redis does not have.
 */
export async function connectionMismatch(
  redis: RedisClient,
  names: ConnectionNames = ENV_CONNECTION,
): Promise<string | undefined> {
  if (redis instanceof Cluster) return undefined;
  const info = await redis.info("cluster");
  if (/cluster_enabled:1/.test(info))
    return `the Redis at ${names.url} is a Redis Cluster node: ${names.turnOn}`;
  return databaseMissing(redis, `the Redis at ${names.url}`);
}

/** Redis's reply to SELECT of a number beyond its `databases` (its code is only ERR). */
const NO_SUCH_DATABASE = /DB index is out of range/;

/**
 * Why a database named in the URL cannot be used: ioredis selects it on connecting, but when
 * Redis refuses (a number beyond its `databases`) it only emits an error and goes on in database
 * 0, another deployment's data perhaps. Undefined for database 0 or one Redis has. Any other
 * refusal of the SELECT (BUSY, LOADING, a dropped connection: Redis cannot answer now) is thrown,
 * not taken for a missing database: asked again later, the database may well be there.
 */
export async function databaseMissing(redis: Redis, where: string): Promise<string | undefined> {
  const db = redis.options.db ?? 0;
  if (db === 0) return undefined;
  try {
    await redis.select(db);
    return undefined;
  } catch (error) {
    if (!(error instanceof Error) || !NO_SUCH_DATABASE.test(error.message)) throw error;
    return `${where} has no database ${db} (${error.message}): name a database it has (its databases setting, 16 by default, numbers them from 0)`;
  }
}

/** Replies with which Redis refuses the credentials (none given, or wrong ones). */
const AUTH_REFUSALS = /^(NOAUTH|WRONGPASS|ERR AUTH|ERR invalid password)/;

/**
 * Why cluster mode cannot connect, as the first seed node tells it (ioredis only reports that no
 * startup node was available, "Failed to refresh slots cache", or waits): it refuses the password
 * (the first URL's, which every node gets); it is not a cluster node; or its cluster is in state
 * fail, with no slot assigned (its nodes never joined) or, when `failing` (the connection did not
 * become ready in time), with a shard down. When `failing`, also why the node could not be asked
 * (refused, no TLS on a rediss:// port, …). Undefined otherwise.
 */
export async function clusterRefusal(
  url: string,
  names: ConnectionNames = ENV_CONNECTION,
  failing = true,
): Promise<string | undefined> {
  const seed = url.split(",")[0]?.trim() ?? "";
  const probe = new Redis(seed, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2_000,
  });
  // The first error says why (WRONGPASS, ECONNREFUSED …); the rejection only "Connection is closed".
  let first: Error | undefined;
  probe.on("error", (error: Error) => {
    first = tellingConnectError(first, error);
  });
  try {
    await probe.connect();
    const info = await probe.info("cluster");
    if (/cluster_enabled:0/.test(info))
      return `${names.cluster}, but the Redis at ${names.url} is not a Redis Cluster node: ${names.turnOff}, or list the cluster's nodes in ${names.url}`;
    const state = String(await probe.call("CLUSTER", "INFO"));
    if (!/cluster_state:fail/.test(state)) return undefined;
    const assigned = /cluster_slots_assigned:(\d+)/.exec(state)?.[1] ?? "?";
    // A shard down may be a failover under way: only after waiting for it is that a refusal.
    if (assigned !== "0" && !failing) return undefined;
    const failed = /cluster_slots_fail:(\d+)/.exec(state)?.[1] ?? "?";
    return assigned === "0"
      ? `the Redis Cluster at ${names.url} has no slots assigned (cluster_state:fail): its nodes were never joined; join them (redis-cli --cluster create …)`
      : `the Redis Cluster at ${names.url} is in state fail (${assigned} of 16384 slots assigned, ${failed} failing): bring back the master (or a replica) of the shard that is down`;
  } catch (error) {
    const why = first ?? (error as Error);
    // A refused password is refused by every node (they all get the first URL's): no use waiting.
    if (AUTH_REFUSALS.test(why.message))
      return `cannot reach Redis at ${names.url}: ${why.message} (on a Redis Cluster, the username and password of the first URL are used for every node)`;
    return failing
      ? `cannot reach Redis at ${names.url}: ${connectFailureText(why, seed)}`
      : undefined;
  } finally {
    probe.disconnect();
  }
}

/**
 * Connects, or rejects after `ms` where waiting would be without end: ioredis's Cluster client
 * waits for a cluster whose state is fail (nodes never joined, a shard without a master), where a
 * caller must say so. A single Redis is waited for as long as it takes (loading a large dataset,
 * say) unless `single` is "bounded": a one-shot command's operator would rather hear that a Redis
 * accepts connections but does not answer (stopped, overloaded) than wait at a silent prompt.
 */
export async function connectWithin(
  redis: RedisClient,
  ms: number,
  single: "unbounded" | "bounded" = "unbounded",
): Promise<void> {
  if (!isCluster(redis) && single === "unbounded") {
    await redis.connect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no ready answer within ${Math.round(ms / 1000)} s`)),
      ms,
    );
  });
  try {
    await Promise.race([redis.connect(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An error of ioredis's reply parser: what answered does not speak RESP. */
function isProtocolError(error: Error): boolean {
  return /Unknown RESP type|Protocol error/.test(error.message);
}

/**
 * The error that says best why connecting failed, of the one kept so far and a new one: the
 * first, unless a later one shows that what answers is not Redis (a server that answers in its
 * own protocol and hangs up gives a write EPIPE or a reset beside the parse error, in either
 * order).
 */
export function tellingConnectError(kept: Error | undefined, next: Error): Error {
  if (!kept) return next;
  return !isProtocolError(kept) && isProtocolError(next) ? next : kept;
}

const OTHER_PROTOCOL =
  "what answers there does not speak the Redis protocol (an HTTP server, say): check the host and port";

/**
 * Why a connection to `url` failed, in an operator's words where ioredis's own are about its
 * internals: something other than Redis answering (its reply fails to parse as RESP), or a TLS
 * connection (`rediss://`) to a port that does not speak TLS.
 */
export function connectFailureText(error: Error, url: string): string {
  if (isProtocolError(error)) return OTHER_PROTOCOL;
  if (
    url.trim().startsWith("rediss:") &&
    /ETIMEDOUT|ECONNRESET|wrong version number|no ready answer/.test(error.message)
  )
    return `${error.message} (the URL asks for TLS with rediss://: does that port serve TLS?)`;
  return error.message;
}

/**
 * connectFailureText for a connection that was cut before a reply could be read (reset, or a
 * write after the other side closed): asks once more, on a plain socket of its own, whether what
 * answers at a single Redis's `redis://` address speaks RESP. An HTTP server answers ioredis's
 * first command with a 400 and hangs up, and the commands ioredis wrote after it fail with EPIPE,
 * often before the 400 is read; a one-shot command, which connects once, then said only that.
 */
export async function cutConnectionText(
  error: Error,
  url: string,
  cluster: boolean,
): Promise<string> {
  const cut = /\b(EPIPE|ECONNRESET)\b/.test(error.message);
  if (!cut || cluster || !url.trim().startsWith("redis:")) return connectFailureText(error, url);
  return (await answersInAnotherProtocol(url)) ? OTHER_PROTOCOL : connectFailureText(error, url);
}

/** The first byte of every RESP2 and RESP3 reply. */
const RESP_TYPES = new Set("+-:$*_,#!=(%~>|");

/**
 * Whether what listens at `url`'s address answers a PING, within `ms`, with something other than
 * a RESP reply (a Redis answers +PONG, or an error such as -NOAUTH). Silence, a refusal or a hang-up
 * without a reply are not taken for another protocol.
 */
function answersInAnotherProtocol(url: string, ms = 2_000): Promise<boolean> {
  let host: string;
  let port: number;
  try {
    const parsed = new URL(url.trim());
    host = parsed.hostname.replace(/^\[|\]$/g, "");
    port = Number(parsed.port || 6379);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (other: boolean) => {
      socket.destroy();
      resolve(other);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data: Buffer) => done(!RESP_TYPES.has(String.fromCharCode(data[0] ?? 0))));
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
  });
}

/**
 * A Redis URL (or a cluster's comma-separated seed URLs) without credentials, to name it in
 * messages and in Redis itself: `redis://a:6379,redis://b:6379`, `redis://a:6379/5` for a
 * database other than 0.
 */
export function redisNodesName(url: string): string {
  return url
    .split(",")
    .map((part) => {
      try {
        const parsed = new URL(part.trim());
        const db = /^\/(\d+)$/.exec(parsed.pathname)?.[1];
        return `${parsed.protocol}//${parsed.hostname}:${parsed.port || 6379}${db && db !== "0" ? `/${db}` : ""}`;
      } catch {
        return "(an unreadable URL)";
      }
    })
    .join(",");
}
