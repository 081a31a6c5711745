import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { performance } from "node:perf_hooks";
import type { Command } from "ioredis";
import { StoreKeys } from "./keys.js";
import { isCluster, type RedisClient } from "./redis-client.js";
import { scanKeys } from "./reshard-store.js";

/**
 * The marks of operator commands at work (`followups erase`, `cancel`, `resolve`, …): each holds
 * one while it runs, taken before it checks for a reshard or a move under way, and `followups
 * reshard` and `followups migrate` look for them after marking theirs. Either the command finds
 * the reshard's mark and refuses, or the reshard finds the command's and refuses: a command never
 * changes a customer's keys under the old shard count while they are moved (an erasure would leave
 * what the move had copied already, a cancel be lost with the key it changed).
 */

/** How long a mark lasts without being renewed (a command killed -9); renewed every third of it. */
export const OPERATOR_COMMAND_MS = 30_000;

/** What a mark says of the command holding it. */
export interface OperatorCommandHolder {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
}

/** A command's mark; release it when the command ends, however it ends. */
export interface OperatorCommandMark {
  /**
   * Why the mark may have lapsed, once the connection found so (a command held up past what the
   * mark is sure to last) or its renewal did (the mark gone): the connection sends nothing more.
   */
  lapsed(): OperatorCommandLapsed | undefined;
  /** Renews it now (what its timer does every third of its lifetime). */
  renew(): Promise<void>;
  release(): Promise<void>;
}

/**
 * The command's mark may have run out while it was held up (its process stalled, its machine was
 * paused) or was taken away: a `followups reshard` or `migrate` may have begun since, so the
 * command stops before it writes again.
 */
export class OperatorCommandLapsed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OperatorCommandLapsed";
  }
}

/** What a test may change: the mark's lifetime and the monotonic clock its lease is read on. */
export interface OperatorCommandMarkOptions {
  readonly lifetimeMs?: number;
  /** Milliseconds on a monotonic clock (default performance.now). */
  readonly clock?: () => number;
}

type SendCommand = (command: Command, stream?: unknown, node?: unknown) => unknown;

/**
 * A mark's guard on a connection's method, with what it wraps (and whether that was the
 * connection's own property): a guard released out of order stays in its chain, passing
 * everything, until the guard wrapped around it is released and skips it.
 */
const wrapped = new WeakMap<object, { under: unknown; own: boolean; released: () => boolean }>();

/** Puts back under `name` what `guard` wrapped, skipping guards released already. */
function unwrap(on: object, name: string, guard: object): void {
  const slot = on as Record<string, unknown>;
  if (slot[name] !== guard) return;
  let at = wrapped.get(guard);
  while (at && typeof at.under === "function") {
    const below = wrapped.get(at.under);
    if (!below?.released()) break;
    at = below;
  }
  if (at?.own) slot[name] = at.under;
  else delete slot[name];
}

/** What ioredis's Cluster does with an error reply: retries through the handler that fits. */
interface RetryHandlers {
  moved(slot: number, key: string): void;
  ask(slot: number, key: string): void;
  tryagain(): void;
  clusterDown(): void;
  connectionClosed(): void;
  maxRedirections(error: Error): void;
  defaults(): void;
}
type HandleError = (error: Error, ttl: { value?: number }, handlers: RetryHandlers) => void;

/**
 * Marks an operator command at work on the deployment under `prefix`, renewed until released.
 * The mark's lease is kept on this process's clock too: a renewal that Redis confirmed at `t`
 * (counted from when it was sent) holds the mark until `t` plus its lifetime at least. The
 * command's connection (`redis`, the command's own) sends a command only within two thirds of
 * the lifetime after `t` (20 s of 30), so what it sends reaches Redis with a third (10 s) to
 * spare before the mark could expire; a command held up longer (an event loop blocked, a machine
 * paused: timers do not run meanwhile), whose renewals failed for as long, or whose renewal
 * found the mark gone, has the connection refuse everything from then on with
 * OperatorCommandLapsed, before any write of it reaches Redis. The decision holds for a whole
 * synchronous stretch, so a pipeline or transaction is sent whole or not at all.
 */
export async function markOperatorCommand(
  redis: RedisClient,
  prefix: string,
  now: () => number = Date.now,
  options: OperatorCommandMarkOptions = {},
): Promise<OperatorCommandMark> {
  const lifetimeMs = options.lifetimeMs ?? OPERATOR_COMMAND_MS;
  const clock = options.clock ?? (() => performance.now());
  const key = new StoreKeys(prefix).operatorCommand(randomUUID());
  const holder: OperatorCommandHolder = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date(now()).toISOString(),
  };
  const setAt = clock();
  await redis.set(key, JSON.stringify(holder), "PX", lifetimeMs);
  /** When the latest renewal Redis confirmed was sent (the mark lasts its lifetime from then). */
  let confirmedAt = setAt;
  let lost: OperatorCommandLapsed | undefined;
  const lapse = (why: string) => {
    lost ??= new OperatorCommandLapsed(
      `this command's mark in Redis (${key}), which keeps \`followups reshard\` and \`followups migrate\` from starting while it runs, ${why}: one of them may have begun since, so the command stopped before writing anything more. What it did before is done; run it again (it refuses while a reshard or a move is under way, and does what is left)`,
    );
    return lost;
  };
  const check = (): OperatorCommandLapsed | undefined => {
    if (lost) return lost;
    const heldUp = clock() - confirmedAt;
    if (heldUp > lifetimeMs - lifetimeMs / 3)
      return lapse(
        `was last renewed ${Math.round(heldUp / 1000)} s ago and lasts ${Math.round(lifetimeMs / 1000)} s (the command was held up: its process stalled or its machine paused, or Redis did not answer)`,
      );
    return undefined;
  };

  // The guard on the command's connection: one verdict per synchronous stretch (cleared by a
  // microtask), so a pipeline's commands, sent one by one in a loop, share it.
  const target = redis as unknown as { sendCommand: SendCommand };
  const ownSend = Object.hasOwn(target, "sendCommand");
  const send = target.sendCommand;
  let verdict: OperatorCommandLapsed | undefined | null = null;
  let bypass = false;
  // Once released, this mark's guards pass everything: another mark's, taken on the same
  // connection after this one, may have wrapped them and still hold.
  let released = false;
  const guarded: SendCommand = function guarded(this: unknown, command, stream, node) {
    if (!bypass && !released) {
      if (verdict === null) {
        verdict = check();
        queueMicrotask(() => {
          verdict = null;
        });
      }
      if (verdict) {
        command.reject(verdict);
        return command.promise;
      }
    }
    return send.call(this, command, stream, node);
  };
  target.sendCommand = guarded;
  wrapped.set(guarded, { under: send, own: ownSend, released: () => released });
  // On a Redis Cluster, a command answered MOVED, ASK, TRYAGAIN or CLUSTERDOWN, or one whose
  // node went away, is sent again by the client after a delay without passing `sendCommand`:
  // each such retry is checked here as it is made. A pipeline's retry is sent again through
  // `sendCommand`, and checked there.
  const cluster = isCluster(redis) ? (redis as unknown as { handleError: HandleError }) : undefined;
  const ownHandle = cluster !== undefined && Object.hasOwn(cluster, "handleError");
  const handle = cluster?.handleError;
  let guardedRetry: HandleError | undefined;
  if (cluster && handle) {
    guardedRetry = function guardedRetry(this: unknown, error, ttl, handlers) {
      if (released) return handle.call(this, error, ttl, handlers);
      const unlessLapsed =
        <A extends unknown[]>(retry: (...args: A) => void) =>
        (...args: A) => {
          const lapsed = bypass ? undefined : check();
          if (lapsed) handlers.maxRedirections(lapsed);
          else retry(...args);
        };
      return handle.call(this, error, ttl, {
        ...handlers,
        moved: unlessLapsed(handlers.moved),
        ask: unlessLapsed(handlers.ask),
        tryagain: unlessLapsed(handlers.tryagain),
        clusterDown: unlessLapsed(handlers.clusterDown),
        connectionClosed: unlessLapsed(handlers.connectionClosed),
      });
    };
    cluster.handleError = guardedRetry;
    wrapped.set(guardedRetry, { under: handle, own: ownHandle, released: () => released });
  }
  /** Sends the mark's renewal past the guard: a mark still there is worth knowing of. */
  const unguarded = <T>(call: () => Promise<T>): Promise<T> => {
    bypass = true;
    try {
      return call();
    } finally {
      bypass = false;
    }
  };

  const renew = async () => {
    if (lost) return;
    const at = clock();
    // Renewed only while it is there; a Redis gone away fails the command's own calls too.
    const renewed = await unguarded(() => redis.pexpire(key, lifetimeMs)).catch(() => undefined);
    if (renewed === 1) confirmedAt = Math.max(confirmedAt, at);
    else if (renewed === 0) lapse("was gone when it was renewed (it ran out, or was deleted)");
  };
  const timer = setInterval(() => void renew(), lifetimeMs / 3);
  timer.unref();
  return {
    lapsed: () => lost,
    renew,
    async release() {
      clearInterval(timer);
      released = true;
      // Put back what was there unless another mark wrapped this one's guard since (released
      // out of order): then the guard stays in its chain, passing everything, and the other's
      // holds until it is released in turn.
      unwrap(target, "sendCommand", guarded);
      if (cluster && guardedRetry) unwrap(cluster, "handleError", guardedRetry);
      // With Redis gone, the mark runs out on its own: the command's own error is the one to tell.
      await redis.del(key).catch(() => undefined);
    },
  };
}

/** The operator commands at work on the deployment under `prefix`, with what each mark says. */
export async function operatorCommandsAtWork(
  redis: RedisClient,
  prefix: string,
): Promise<{ holder?: OperatorCommandHolder; leftMs: number }[]> {
  const found: { holder?: OperatorCommandHolder; leftMs: number }[] = [];
  for await (const batch of scanKeys(redis, new StoreKeys(prefix).operatorCommands())) {
    for (const key of batch) {
      const [raw, leftMs] = await Promise.all([redis.get(key), redis.pttl(key)]);
      if (raw === null) continue;
      found.push({ holder: readHolder(raw), leftMs });
    }
  }
  return found;
}

/**
 * Why a reshard or a move cannot begin now (operator commands are at work, named by their marks),
 * or undefined when none is.
 */
export async function operatorCommandsRefusal(
  redis: RedisClient,
  prefix: string,
): Promise<string | undefined> {
  const commands = await operatorCommandsAtWork(redis, prefix);
  if (commands.length === 0) return undefined;
  const named = commands
    .map(({ holder }) =>
      holder ? `pid ${holder.pid} on ${holder.host}, started ${holder.startedAt}` : "unreadable",
    )
    .join("; ");
  const left = Math.max(1, Math.ceil(Math.max(...commands.map((c) => c.leftMs)) / 1000));
  const what =
    commands.length === 1
      ? `an operator command (${named}) is running on this deployment: wait for it to finish`
      : `${commands.length} operator commands (${named}) are running on this deployment: wait for them to finish`;
  return `${what}. A command that was stopped (killed, or its machine went away) leaves a mark that runs out within ${left} s: then run this command again`;
}

function readHolder(raw: string): OperatorCommandHolder | undefined {
  try {
    const parsed = JSON.parse(raw) as Partial<OperatorCommandHolder>;
    return typeof parsed.pid === "number" &&
      typeof parsed.host === "string" &&
      typeof parsed.startedAt === "string"
      ? (parsed as OperatorCommandHolder)
      : undefined;
  } catch {
    return undefined;
  }
}
