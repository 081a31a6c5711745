import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { CHANNELS } from "../domain/events.js";
import { formerGlobalBase, globalTag, StoreKeys } from "./keys.js";
import { isCluster, type RedisClient } from "./redis-client.js";

/**
 * The key layout a deployment's Redis holds, and the upgrade to it. Layout 6 (2026-12-04) moves
 * the global keys from beside the input queue (`{<prefix>}:fu:…`) to a hash tag of their own
 * (`{<prefix>.global}:fu:…`, keys.ts globalTag), so that on a Redis Cluster the two busiest slots
 * of intake sit on different masters; workers of layout 5 would not find them there (opt-outs,
 * orders, rate limits, secrets). Layout 5 (2026-12-03, late)
 * stores step records in a few characters instead of JSON (store/step-record.ts), which workers
 * of layout 4 cannot read, and a customer's thank-you group inside their history (`c`) instead
 * of a key of its own; records and groups of layout 4 are read as they are. Layout 4 (later on 2026-12-03) keeps an
 * order's links to its purchases in packed buckets (`ol`, store/order-store.ts), where workers of
 * layout 3 would not find them (a refund they handled would not stop the purchase's follow-ups),
 * and the address index in packed buckets too (`who`, moved at start-up: CustomerIndex). Layout 3
 * (2026-12-03) keeps
 * each purchase inside its event record (store/purchase-fields.ts) instead of a key of its own;
 * records of layout 2 are read as they are, so nothing is rewritten, but workers of layout 2
 * neither read nor erase a purchase kept the new way: the two never run together. Layout 2
 * (December 2026) gives every key a Redis Cluster hash tag (global or shard keys, see KeySpace in
 * keys.ts); layout 1, every version before it, named every key `<prefix>:fu:<kind>:…`. The upgrade
 * renames each key of layout 1 to its current name, keeping its value and expiry.
 */

export const KEY_LAYOUT = 6;

/** Kinds (the name part after `fu:`) of shard keys: a customer's and their purchases' state. */
const SHARD_KINDS: ReadonlySet<string> = new Set([
  "e",
  "p",
  "c",
  "ls",
  "ck",
  "cs",
  "ty",
  "sent",
  "x",
  "agg",
  "due",
  "t",
]);
/** Kinds of global keys. */
const GLOBAL_KINDS: ReadonlySet<string> = new Set([
  "spend",
  "o",
  "suppressed",
  "rate",
  "sid",
  "mid",
  "code",
  "call",
  "ci",
  "texted",
  "optout-confirmed",
  "replies",
  "who",
  "sweep",
  "rules",
  "audit",
  "alerts",
  "console",
  "seen",
  "secret",
]);

/**
 * The current name of a layout 1 key, or undefined for a name that is not one of ours. The
 * ledger hours of layout 1 become shard 0's (readers add up all ledgers).
 */
export function currentKeyName(prefix: string, legacyKey: string): string | undefined {
  const base = `${prefix}:fu:`;
  if (!legacyKey.startsWith(base)) return undefined;
  const rest = legacyKey.slice(base.length);
  const kind = rest.split(":", 1)[0] ?? "";
  if (SHARD_KINDS.has(kind)) return `{${prefix}:0}:fu:${rest}`;
  if (GLOBAL_KINDS.has(kind)) return `${globalTag(prefix)}:fu:${rest}`;
  return undefined;
}

/**
 * Workers of a version before are running: renaming the keys under them would make them work on
 * an empty store (opt-outs and caps unseen), and what they write would never be read; workers of
 * layout 2 would not find purchases that workers of layout 3 keep in their records, workers of
 * layout 3 the order links of layout 4, workers of layout 4 read the step records of layout 5,
 * nor workers of layout 5 find the global keys of layout 6.
 */
export class OlderWorkersRunning extends Error {
  constructor(readonly workers: number) {
    super(
      `${workers} worker(s) of an older followups version are running on this Redis and prefix: ` +
        "stop them, then start this version, which renames the store's keys before it takes any job",
    );
    this.name = "OlderWorkersRunning";
  }
}

/** What a worker of the version before finds where it looks for opt-outs after the upgrade. */
export const TOMBSTONE =
  "followups moved this key to its new name (key layout 2): stop workers of versions before December 2026";

/** The suppression lists of every channel, as the part of their names after `fu:`. */
const OPT_OUT_LISTS = CHANNELS.flatMap((channel) => [
  `suppressed:${channel}`,
  `suppressed:${channel}:marketing`,
]);

/**
 * Where the upgrades leave their tombstones (TOMBSTONE, FORMER_GLOBAL_TOMBSTONE): the opt-out
 * lists' names of layout 1 and of layouts 2 to 5. `followups migrate` copies those the old Redis
 * has, so that a worker of an older version started on the new Redis fails there too.
 */
export function tombstoneNames(prefix: string): string[] {
  return [`${prefix}:fu:`, formerGlobalBase(prefix)].flatMap((base) =>
    OPT_OUT_LISTS.map((list) => `${base}${list}`),
  );
}

/**
 * What a worker of layouts 2 to 5 finds where it looks for opt-outs after the upgrade to layout 6.
 * Not TOMBSTONE: those workers delete a string of that text under these names (dropMovedTombstones).
 */
export const FORMER_GLOBAL_TOMBSTONE =
  "followups moved this key to its new name (key layout 6): stop workers of versions before 4 December 2026";

/**
 * After the move of the global keys (layout 6), a string where each suppression set of layouts 2
 * to 5 was: a worker of such a version started by mistake fails its opt-out check (WRONGTYPE) and
 * sends nothing, instead of finding no opt-outs.
 */
async function leaveFormerGlobalTombstones(redis: RedisClient, prefix: string): Promise<void> {
  const base = formerGlobalBase(prefix);
  for (const list of OPT_OUT_LISTS)
    await redis.set(`${base}${list}`, FORMER_GLOBAL_TOMBSTONE, "NX");
}

/**
 * After the rename, a string where each suppression set: a worker of the older version
 * started by mistake then fails its opt-out check (WRONGTYPE) and sends nothing, instead of
 * finding no opt-outs in a store that looks empty to it.
 */
async function leaveTombstones(redis: RedisClient, prefix: string): Promise<void> {
  for (const list of OPT_OUT_LISTS) await redis.set(`${prefix}:fu:${list}`, TOMBSTONE, "NX");
}

/**
 * Deletes a tombstone found under a live suppression set's name: versions of December 2026 up
 * to 4 December moved the tombstones of an earlier upgrade there when they upgraded from layouts
 * 2 to 4, which left that channel's opt-outs failing (WRONGTYPE). Such a key holds no opt-out:
 * the channel had none when the tombstone took its name. (The move of layout 6 passes over
 * tombstones, so it cannot do the same; the check covers its text too.)
 */
async function dropMovedTombstones(redis: RedisClient, keys: StoreKeys): Promise<void> {
  const names = CHANNELS.flatMap((channel) => [
    keys.suppressions(channel),
    keys.marketingSuppressions(channel),
  ]);
  const values = await Promise.all(
    names.map(async (name) =>
      (await redis.type(name)) === "string" ? await redis.get(name) : null,
    ),
  );
  for (const [i, name] of names.entries())
    if (values[i] === TOMBSTONE || values[i] === FORMER_GLOBAL_TOMBSTONE) await redis.del(name);
}

/** Keys looked at per SCAN step and renamed per round trip. */
const BATCH = 1000;
/** How long the upgrading worker's lock lasts without being renewed (it renews every batch). */
const LOCK_MS = 30_000;
/** How often a worker waiting for another's upgrade looks again. */
const WAIT_MS = 250;

export interface KeyLayoutUpgrade {
  /** Keys renamed. */
  readonly renamed: number;
  /** Keys left under their old name because the new name was taken (should not happen). */
  readonly kept: number;
}

/**
 * Brings a deployment's Redis to the current key layout before a worker touches its state: the
 * first worker takes a lock, renames every key of layout 1 (SCAN, then RENAMENX in batches of a
 * thousand, each key with its value and expiry), and marks the layout; the others wait for the
 * mark. A worker that dies midway leaves keys of both layouts; the lock expires and the next
 * worker renames the rest. Workers of a version before must be stopped first (the upgrade refuses
 * while any worker is connected): what they write under the old names after the upgrade is not
 * read, and they do not find purchases kept the way of layout 3 or order links kept the way of
 * layout 4. A worker of an older layout started after the upgrade finds a layout it does not know
 * and, while workers of this one run, refuses too (its own upgrade sees them as older workers).
 */
export async function upgradeKeyLayout(
  redis: RedisClient,
  prefix: string,
  options: {
    /**
     * How many workers of an older version are running (BullMQ workers on the queues: this
     * worker has none yet). The upgrade refuses to start while there are any.
     */
    readonly olderWorkers?: () => Promise<number>;
    /** Called once when another worker holds the upgrade and this one waits. */
    readonly onWaiting?: () => void;
    /** Called about every 100,000 keys renamed. */
    readonly onProgress?: (renamed: number) => void;
  } = {},
): Promise<KeyLayoutUpgrade> {
  const keys = new StoreKeys(prefix);
  let waiting = false;
  for (;;) {
    const layout = await redis.get(keys.layoutVersion());
    if (layout === String(KEY_LAYOUT)) {
      await dropMovedTombstones(redis, keys);
      return { renamed: 0, kept: 0 };
    }
    const token = randomUUID();
    if ((await redis.set(keys.layoutLock(), token, "PX", LOCK_MS, "NX")) === "OK") {
      const older = (await options.olderWorkers?.()) ?? 0;
      if (older > 0) {
        await redis.del(keys.layoutLock());
        throw new OlderWorkersRunning(older);
      }
      // Another worker may have finished the upgrade between the read above and the lock.
      if ((await redis.get(keys.layoutVersion())) === String(KEY_LAYOUT)) {
        await redis.del(keys.layoutLock());
        continue;
      }
      const unfinished = await unfinishedFormerOperation(redis, prefix);
      if (unfinished) {
        await redis.del(keys.layoutLock());
        throw new FormerOperationUnfinished(unfinished);
      }
      const renewLock = () => redis.pexpire(keys.layoutLock(), LOCK_MS);
      // Layouts 2 to 5: the opt-out lists move first, each replaced by a tombstone at once, so
      // that a worker of those layouts started while the rest moves (or after a crash midway)
      // fails its opt-out check instead of finding none; then every other global key.
      const formerStore = await holdsFormerGlobalKeys(
        redis,
        prefix,
        await redis.get(keys.layoutVersion()),
      );
      const lists = formerStore ? await moveFormerOptOutLists(redis, prefix) : 0;
      const moved = await moveFormerGlobalKeys(redis, prefix, renewLock, options.onProgress);
      // No version before layout 2 ran on a Redis Cluster (it failed with MOVED): nothing to rename.
      const legacy = isCluster(redis)
        ? { renamed: 0, kept: 0 }
        : await renameLegacyKeys(redis, prefix, renewLock, options.onProgress);
      // Also when a worker that died midway had renamed every key already: a store of layout 1
      // (no mark) that has the rules generations under their new name.
      const renamedBefore =
        (await redis.get(keys.layoutVersion())) === null &&
        (await redis.exists(keys.rulesGenerations())) === 1;
      if (legacy.renamed > 0 || renamedBefore) await leaveTombstones(redis, prefix);
      // A store that held anything: a worker of layouts 2 to 5 started later must not find it
      // empty either.
      if (formerStore || moved.renamed > 0 || legacy.renamed > 0 || renamedBefore)
        await leaveFormerGlobalTombstones(redis, prefix);
      await dropMovedTombstones(redis, keys);
      await redis.set(keys.layoutVersion(), String(KEY_LAYOUT));
      await redis.del(keys.layoutLock());
      return {
        renamed: lists + moved.renamed + legacy.renamed,
        kept: moved.kept + legacy.kept,
      };
    }
    if (!waiting) options.onWaiting?.();
    waiting = true;
    await sleep(WAIT_MS);
  }
}

/**
 * A reshard or a move to another Redis that a version of layouts 2 to 5 began and did not finish:
 * its marks say so under the former global names. Moving keys under it would mix two layouts.
 */
export class FormerOperationUnfinished extends Error {
  constructor(readonly operation: string) {
    super(
      `${operation} of an older followups version is under way on this Redis and prefix, or this ` +
        "deployment moved away: finish it with that version (or point REDIS_URL at the new Redis), then start this version",
    );
    this.name = "FormerOperationUnfinished";
  }
}

async function unfinishedFormerOperation(
  redis: RedisClient,
  prefix: string,
): Promise<string | undefined> {
  const base = formerGlobalBase(prefix);
  const [reshard, moved, arriving] = await Promise.all(
    ["reshard", "moved", "arriving"].map((mark) => redis.exists(`${base}${mark}`)),
  );
  if (reshard) return "followups reshard";
  if (moved || arriving) return "followups migrate";
  return undefined;
}

/** Keys every store of layouts 2 to 5 has once a worker ran (its mark, rules, secrets). */
const FORMER_MARKS = ["layout", "rules", "secret:address-hash", "secret:unsubscribe"];

/**
 * Whether global keys of layouts 2 to 5 are (or were, before a worker that died midway moved some)
 * beside the input queue: their marks there, or `layout` (the mark under its current name) that
 * of one of those layouts, already moved.
 */
async function holdsFormerGlobalKeys(
  redis: RedisClient,
  prefix: string,
  layout: string | null,
): Promise<boolean> {
  if (layout !== null && layout !== String(KEY_LAYOUT)) return true;
  const base = formerGlobalBase(prefix);
  return (await redis.exists(...FORMER_MARKS.map((mark) => `${base}${mark}`))) > 0;
}

/**
 * Moves the suppression lists of layouts 2 to 5 to their names of layout 6 and leaves a tombstone
 * under each old name at once. Returns how many lists moved.
 */
async function moveFormerOptOutLists(redis: RedisClient, prefix: string): Promise<number> {
  const from = formerGlobalBase(prefix);
  const to = `${globalTag(prefix)}:fu:`;
  let moved = 0;
  for (const list of OPT_OUT_LISTS) {
    const key = `${from}${list}`;
    // A string is a tombstone (of an earlier attempt); only a set holds opt-outs.
    if ((await redis.type(key)) === "set") {
      const result = isCluster(redis)
        ? await copyAcrossSlots(redis, key, `${to}${list}`)
        : ((await renameAll(redis, [[key, `${to}${list}`]]))[0] ?? "gone");
      if (result === "renamed") moved++;
      // A set whose new name is taken stays where it was, and no tombstone covers it.
      if (result === "kept") continue;
    }
    await redis.set(key, FORMER_GLOBAL_TOMBSTONE, "NX");
  }
  return moved;
}

/**
 * Moves every global key of layouts 2 to 5 (`{<prefix>}:fu:…`) to its name of layout 6
 * (`{<prefix>.global}:fu:…`), value and expiry kept. On one Redis a RENAMENX; on a Redis Cluster
 * the two names lie in different slots, so the key is copied (DUMP, then RESTORE with its
 * absolute expiry) and then deleted. A worker that dies between the copy and the delete leaves
 * both; the next one finds the copy in place and deletes the original (nothing else writes
 * either name before the layout mark says 6).
 */
async function moveFormerGlobalKeys(
  redis: RedisClient,
  prefix: string,
  renewLock: () => Promise<unknown>,
  onProgress?: (renamed: number) => void,
): Promise<KeyLayoutUpgrade> {
  const from = formerGlobalBase(prefix);
  const to = `${globalTag(prefix)}:fu:`;
  const tally = { renamed: 0, kept: 0 };
  const nodes = isCluster(redis) ? redis.nodes("master") : [redis];
  for (const node of nodes) {
    let cursor = "0";
    do {
      const [next, found] = await node.scan(cursor, "MATCH", `${from}*`, "COUNT", BATCH);
      cursor = next;
      const moves = await withoutTombstones(
        redis,
        found.map((key) => [key, `${to}${key.slice(from.length)}`] as const),
      );
      const results = isCluster(redis)
        ? await Promise.all(moves.map(([key, target]) => copyAcrossSlots(redis, key, target)))
        : await renameAll(redis, moves);
      countMoves(tally, results, onProgress);
      await renewLock();
    } while (cursor !== "0");
  }
  return tally;
}

/** Adds a batch's results to the tally; reports progress about every 100,000 keys renamed. */
function countMoves(
  tally: { renamed: number; kept: number },
  results: readonly MoveResult[],
  onProgress?: (renamed: number) => void,
): void {
  for (const result of results) {
    if (result === "renamed") tally.renamed++;
    else if (result === "kept") tally.kept++;
  }
  if (tally.renamed > 0 && tally.renamed % 100_000 < results.length) onProgress?.(tally.renamed);
}

type MoveResult = "renamed" | "kept" | "gone";

async function renameAll(
  redis: RedisClient,
  moves: readonly (readonly [string, string])[],
): Promise<MoveResult[]> {
  if (moves.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const [key, target] of moves) pipeline.renamenx(key, target);
  return ((await pipeline.exec()) ?? []).map(([error, result]): MoveResult => {
    // A key that expired since the scan has nothing to move.
    if (error && /no such key/i.test(error.message)) return "gone";
    if (error) throw error;
    return result === 1 ? "renamed" : "kept";
  });
}

async function copyAcrossSlots(
  redis: RedisClient,
  key: string,
  target: string,
): Promise<MoveResult> {
  const [value, expiresAt] = await Promise.all([redis.dumpBuffer(key), redis.pexpiretime(key)]);
  if (value === null || expiresAt === -2) return "gone";
  try {
    // ABSTTL: the same expiry instant; 0 is none. An instant already past stores nothing.
    await redis.restore(target, Math.max(expiresAt, 0), value, "ABSTTL");
  } catch (error) {
    if (!(error instanceof Error && /BUSYKEY/.test(error.message))) throw error;
    // The new name is taken: by this key's copy when an earlier attempt died before deleting
    // the original (the same value), else by something else, and the original stays (as RENAMENX).
    const there = await redis.dumpBuffer(target);
    if (there === null || !there.equals(value)) return "kept";
  }
  await redis.del(key);
  return "renamed";
}

async function renameLegacyKeys(
  redis: RedisClient,
  prefix: string,
  renewLock: () => Promise<unknown>,
  onProgress?: (renamed: number) => void,
): Promise<KeyLayoutUpgrade> {
  const tally = { renamed: 0, kept: 0 };
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", `${prefix}:fu:*`, "COUNT", BATCH);
    cursor = next;
    const moves = await withoutTombstones(
      redis,
      found.flatMap((key) => {
        const target = currentKeyName(prefix, key);
        return target ? [[key, target] as const] : [];
      }),
    );
    countMoves(tally, await renameAll(redis, moves), onProgress);
    await renewLock();
  } while (cursor !== "0");
  return tally;
}

/**
 * The renames left to do: not the tombstones an upgrade left where the suppression sets were
 * (strings; a suppression set is a set). A later upgrade finds them under the old names, and must
 * not put them where the live opt-outs are.
 */
async function withoutTombstones(
  redis: RedisClient,
  moves: readonly (readonly [string, string])[],
): Promise<(readonly [string, string])[]> {
  const suppressions = moves.filter(([key]) => key.includes(":fu:suppressed:"));
  if (suppressions.length === 0) return [...moves];
  const pipeline = redis.pipeline();
  for (const [key] of suppressions) pipeline.type(key);
  const types = (await pipeline.exec()) ?? [];
  const tombstones = new Set(
    suppressions.filter((_, i) => types[i]?.[1] === "string").map(([key]) => key),
  );
  return moves.filter(([key]) => !tombstones.has(key));
}

/**
 * Whether keys of an older layout are still waiting for a worker to upgrade them: a one-shot
 * command refuses to work on such a store (it would see nothing, or write where no worker reads).
 * Looks for keys that every such deployment has (its rules generations, secrets, schedule index).
 */
export async function olderLayoutRemains(redis: RedisClient, prefix: string): Promise<boolean> {
  const keys = new StoreKeys(prefix);
  const layout = await redis.get(keys.layoutVersion());
  if (layout === String(KEY_LAYOUT)) return false;
  // Layouts 2 to 5, also an upgrade under way or stopped midway by a crash.
  if (await holdsFormerGlobalKeys(redis, prefix, layout)) return true;
  if (isCluster(redis)) return false;
  // Keys every deployment of layout 1 had once a worker ran: no scan of a large keyspace.
  const marks = ["rules", "secret:address-hash", "secret:unsubscribe", "t"];
  return (await redis.exists(...marks.map((mark) => `${prefix}:fu:${mark}`))) > 0;
}
