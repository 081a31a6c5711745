import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
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
  release(): Promise<void>;
}

/** Marks an operator command at work on the deployment under `prefix`, renewed until released. */
export async function markOperatorCommand(
  redis: RedisClient,
  prefix: string,
  now: () => number = Date.now,
): Promise<OperatorCommandMark> {
  const key = new StoreKeys(prefix).operatorCommand(randomUUID());
  const holder: OperatorCommandHolder = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date(now()).toISOString(),
  };
  await redis.set(key, JSON.stringify(holder), "PX", OPERATOR_COMMAND_MS);
  const timer = setInterval(() => {
    // Renewed only while it is there; a Redis gone away fails the command's own calls too.
    redis.pexpire(key, OPERATOR_COMMAND_MS).catch(() => undefined);
  }, OPERATOR_COMMAND_MS / 3);
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
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
