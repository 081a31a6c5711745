import type { ChainableCommander } from "ioredis";
import { shardOf as codeShard } from "./discount-codes.js";
import { readEntries } from "./follow-up-schedule.js";
import {
  customerShard,
  globalTag,
  idHash,
  PACKED_ENTRY_CHARS,
  StoreKeys,
  shardScope,
  shardTag,
} from "./keys.js";
import { linkShard, orderLink, relinked } from "./order-store.js";
import { decodeStored } from "./purchase-codec.js";
import { purchaseInRecord } from "./purchase-fields.js";
import { isCluster, type RedisClient, restoreTtl, unlessRedisAway } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { decodeRef, encodeRef } from "./sms-references.js";
import { parseReplyId, replyId } from "./step-replies.js";

/**
 * What changing a deployment's shard count (FOLLOW_UP_SHARDS) does to its keys, for `followups
 * reshard` (operations/reshard.ts), with every worker stopped. A customer's keys move to the shard
 * their id hashes to under the new count, a purchase's with its customer; references kept outside
 * the shards (message ids, order links, codes, call scripts, replies, owners' alerts) are rewritten
 * to name the new shard. Every part can be run again after a crash: a key already moved is not
 * found under its old name, a reference already rewritten names its shard.
 */

/** Keys looked at per SCAN step, and moved per round of concurrent commands. */
const BATCH = 500;

/**
 * The shard of a customer whose id hashed to `hash` (an idHash, as key names carry it):
 * customerShard without the id, from the same first 32 bits of its SHA-256.
 */
export function shardOfIdHash(hash: string, shards: number): number | undefined {
  if (shards <= 1) return 0;
  const bytes = Buffer.from(hash.slice(0, 8), "base64url");
  return bytes.length < 4 ? undefined : bytes.readUInt32BE(0) % shards;
}

/** The keys of every master (on a Redis Cluster) matching a pattern, a batch at a time. */
export async function* scanKeys(redis: RedisClient, pattern: string): AsyncGenerator<string[]> {
  const nodes = isCluster(redis) ? redis.nodes("master") : [redis];
  for (const node of nodes) {
    let cursor = "0";
    do {
      const [next, found] = await node.scan(cursor, "MATCH", pattern, "COUNT", BATCH);
      cursor = next;
      if (found.length > 0) yield found;
    } while (cursor !== "0");
  }
}

/** Runs `work` over items, BATCH at a time (each command on its own: a cluster routes it). */
async function inBatches<T>(items: readonly T[], work: (item: T) => Promise<unknown>) {
  for (let start = 0; start < items.length; start += BATCH)
    await Promise.all(items.slice(start, start + BATCH).map(work));
}

/** Where each purchase goes under the new count: its customer's shard. */
export class EventPlacement {
  private readonly byHash = new Map<string, number>();
  private readonly byId = new Map<string, number>();

  place(eventId: string, shard: number): void {
    this.byId.set(eventId, shard);
    this.byHash.set(idHash(eventId), shard);
  }

  /** The new shard of an event, by its id. */
  ofEvent(eventId: string): number | undefined {
    return this.byId.get(eventId);
  }

  /** The new shard of an event, by the hash its keys carry. */
  ofHash(hash: string): number | undefined {
    return this.byHash.get(hash);
  }

  get size(): number {
    return this.byId.size;
  }
}

/** What a reshard moved and rewrote. */
export interface ReshardCounts {
  /** Keys of customers and purchases moved to another shard. */
  keysMoved: number;
  /**
   * Records of events without a customer to be found (refunds and opt-outs, which name none; a
   * purchase no stored purchase or customer history names any more): they go to shard 0, where
   * intake files events without a customer.
   */
  recordsToShardZero: number;
  /** Counts (ledger hours, pending days) of shards that no longer exist, added to shard 0's. */
  countsFolded: number;
  /** Steps moved from one shard's schedule to another's. */
  scheduledMoved: number;
  /** Schedule entries of purchases that are gone, dropped. */
  scheduledDropped: number;
  /** References outside the shards rewritten to name the new shard. */
  referencesRewritten: number;
  /** Event ids claimed for the whole deployment (when going from one shard to several). */
  idsClaimed: number;
}

export function emptyCounts(): ReshardCounts {
  return {
    keysMoved: 0,
    recordsToShardZero: 0,
    countsFolded: 0,
    scheduledMoved: 0,
    scheduledDropped: 0,
    referencesRewritten: 0,
    idsClaimed: 0,
  };
}

/** The hash tag a shard key starts with (`{followups:3}`). */
function tagOf(key: string): string {
  return key.slice(0, key.indexOf("}") + 1);
}

/** The keys of one deployment while its shard count changes from `from` to `to`. */
export class ReshardKeys {
  private readonly redis: RedisClient & StoreCommands;
  readonly global: StoreKeys;
  /** Hash tags of the shards before and after. */
  readonly fromTags: readonly string[];
  readonly toTags: readonly string[];

  constructor(
    redis: RedisClient,
    readonly prefix: string,
    readonly from: number,
    readonly to: number,
  ) {
    this.redis = withStoreCommands(redis);
    this.global = new StoreKeys(prefix);
    this.fromTags = Array.from({ length: from }, (_, n) => shardTag(prefix, n, from));
    this.toTags = Array.from({ length: to }, (_, n) => shardTag(prefix, n, to));
  }

  /**
   * The shard keys of some kinds under some tags, a batch at a time: one SCAN of every shard key of
   * the deployment (each master of a cluster once), whatever the number of tags.
   */
  private async *shardKeys(
    tags: ReadonlySet<string>,
    kind = "",
  ): AsyncGenerator<{ key: string; tag: string; rest: string }[]> {
    for await (const batch of scanKeys(this.redis, `{${this.prefix}:*}:fu:${kind}*`)) {
      const found = batch.flatMap((key) => {
        const tag = tagOf(key);
        return tags.has(tag) ? [{ key, tag, rest: key.slice(tag.length + ":fu:".length) }] : [];
      });
      if (found.length > 0) yield found;
    }
  }

  /**
   * Finds every purchase's customer: from its stored purchase key (`p:`, versions before
   * 2026-12-03), else from the customer's history, which lists their latest purchases, else from
   * the purchase inside its record (since 2026-12-03, and as JSON before 2026-11-30). Looks under the tags of both counts, so a run after
   * a crash finds what an earlier run moved already.
   */
  async placeEvents(): Promise<EventPlacement> {
    const placement = new EventPlacement();
    const tags = new Set([...this.fromTags, ...this.toTags]);
    for await (const batch of this.shardKeys(tags)) {
      await inBatches(batch, async ({ key, rest }) => {
        if (rest.startsWith("c:")) {
          const shard = shardOfIdHash(rest.slice(2), this.to);
          if (shard === undefined) return;
          for (const field of await this.redis.hkeys(key))
            if (field.startsWith("e:")) placement.place(field.slice(2), shard);
        } else if (rest.startsWith("p:")) {
          const stored = await this.redis.getBuffer(key);
          if (!stored) return;
          try {
            const decoded = decodeStored(stored);
            const purchase = decoded.kind === "whole" ? decoded.event : decoded.kept;
            placement.place(purchase.id, customerShard(purchase.customer.id, this.to));
          } catch {
            // Not a format this version reads: the record it belongs to goes to shard 0.
          }
        }
      });
    }
    for await (const batch of this.shardKeys(tags, "e:")) {
      await inBatches(batch, async ({ key, rest }) => {
        if (placement.ofHash(rest.slice(2)) !== undefined) return;
        // One in a format this version does not read goes to shard 0 with its record; Redis away
        // stops the reshard, rather than sending every purchase it could not read there.
        const purchase = await purchaseInRecord(this.redis, key).catch(
          unlessRedisAway(() => undefined),
        );
        if (purchase) placement.place(purchase.id, customerShard(purchase.customer.id, this.to));
      });
    }
    return placement;
  }

  /**
   * Keeps the job watch's upgrade marks (`fu:jw`, queue/job-watch-upgrade.ts) true of the new
   * shards: when any old shard's records were not all read yet (no `done`: its workers never
   * started on a version with the watch, or stopped half-way), its purchases may move into a shard
   * marked done, whose workers would never read them, so every new shard's mark goes and each is
   * read again at its first worker's start (a step filed twice is acted on once). Run before
   * moveShardKeys, which drops the marks of shards that no longer exist (a run after a crash
   * finds those gone, and has every shard read again: more reading, nothing missed).
   */
  async keepJobWatchUpgradeTrue(): Promise<void> {
    const marks = await Promise.all(
      this.shardKeysOf(this.from).map((keys) => this.redis.get(keys.jobWatchUpgrade())),
    );
    if (marks.every((mark) => mark === "done")) return;
    // One key at a time: on a cluster each shard's key is in a slot of its own.
    for (const keys of this.shardKeysOf(this.to)) await this.redis.del(keys.jobWatchUpgrade());
  }

  /**
   * Moves the keys of every customer and purchase of the old shards to their new shard (DUMP and
   * RESTORE, value and expiry, then the old name deleted); erasure markers go to every shard;
   * counts of shards that no longer exist are added to shard 0's. The schedule is left to
   * moveSchedule.
   */
  async moveShardKeys(placement: EventPlacement, counts: ReshardCounts): Promise<void> {
    const newTags = new Set(this.toTags);
    for await (const batch of this.shardKeys(new Set(this.fromTags))) {
      await inBatches(batch, async ({ key, tag, rest }) => {
        const kind = rest.split(":", 1)[0] ?? "";
        // Whether a shard's records were read for the job watch's upgrade: a shard that no longer
        // exists has none to read; a new shard reads its own once, at its first worker's start.
        if (kind === "jw") {
          if (!newTags.has(tag)) await this.redis.del(key);
          return;
        }
        if (kind === "tg" || kind === "tq" || kind === "tr") {
          await this.moveReplanNotes(key, kind, placement, newTags.has(tag));
          return;
        }
        if (kind === "smsfailed") {
          await this.moveSmsFailures(key, placement);
          return;
        }
        const to = this.destinations(kind, rest, placement, newTags.has(tag));
        if (to === undefined) return;
        if (to === "fold") {
          await this.fold(key, tag, rest);
          counts.countsFolded++;
          return;
        }
        const targets = to.map((shard) => `${this.toTags[shard]}:fu:${rest}`);
        if (kind === "x") {
          await this.spreadErasure(key, targets);
          return;
        }
        const [target] = targets;
        if (target === undefined || target === key) return;
        const unplaced = kind === "e" && placement.ofHash(rest.slice(2)) === undefined;
        // A record of an event without a customer never replaces one shard 0 has.
        if (await this.copy(key, [target], !unplaced)) {
          await this.redis.del(key);
          if (unplaced) counts.recordsToShardZero++;
          else counts.keysMoved++;
        }
      });
    }
    await this.padPendingDays();
  }

  /**
   * A shard's re-planning notes under the new count: the generation its walk began for goes to
   * every new shard (each keeps the newest), each purchase noted for a re-plan under newer rules
   * to its new shard's set (keeping the set's expiry), and its failed tries (`tr`) to its new
   * shard's hash (keeping the later expiry); the old names go unless they stay.
   */
  private async moveReplanNotes(
    key: string,
    kind: "tg" | "tq" | "tr",
    placement: EventPlacement,
    tagStays: boolean,
  ): Promise<void> {
    if (kind === "tg") {
      const walk = await this.redis.get(key);
      if (walk === null) return;
      for (const tag of this.toTags) await this.redis.fuBeginWalk(`${tag}:fu:tg`, Number(walk));
      if (!tagStays) await this.redis.del(key);
      return;
    }
    if (kind === "tr") {
      await this.moveReplanTries(key, placement);
      return;
    }
    const [eventIds, ttl] = await Promise.all([this.redis.smembers(key), this.redis.pttl(key)]);
    const byShard = new Map<string, string[]>();
    for (const eventId of eventIds) {
      const target = `${this.toTags[placement.ofHash(idHash(eventId)) ?? 0]}:fu:tq`;
      if (target === key) continue;
      const moved = byShard.get(target);
      if (moved) moved.push(eventId);
      else byShard.set(target, [eventId]);
    }
    for (const [target, moved] of byShard) {
      await this.laterExpiry(this.redis.multi().sadd(target, ...moved), target, ttl).exec();
      await this.redis.srem(key, ...moved);
    }
  }

  /**
   * Moves the failed re-plans of noted purchases (`<failures> <next try>` by event id) to their
   * purchases' new shards, each with the later expiry of the two hashes; a field is taken off the
   * old hash once it is written to the new one, so a run after a crash moves the rest.
   */
  private async moveReplanTries(key: string, placement: EventPlacement): Promise<void> {
    const [tries, ttl] = await Promise.all([this.redis.hgetall(key), this.redis.pttl(key)]);
    const byShard = new Map<string, Record<string, string>>();
    for (const [eventId, value] of Object.entries(tries)) {
      const target = `${this.toTags[placement.ofHash(idHash(eventId)) ?? 0]}:fu:tr`;
      if (target === key) continue;
      byShard.set(target, { ...byShard.get(target), [eventId]: value });
    }
    for (const [target, moved] of byShard) {
      await this.laterExpiry(this.redis.multi().hset(target, moved), target, ttl).exec();
      await this.redis.hdel(key, ...Object.keys(moved));
    }
  }

  /**
   * Moves the steps a final SMS status failed (`smsfailed`: `<eventId>/<stepId>` by when, which
   * `followups failed` lists from each shard's records) to their purchases' new shards, each
   * with its time and the later expiry of the two sets; an entry is taken off the old set once
   * it is written to the new one, so a run after a crash moves the rest.
   */
  private async moveSmsFailures(key: string, placement: EventPlacement): Promise<void> {
    const [entries, ttl] = await Promise.all([
      this.redis.zrange(key, "0", "-1", "WITHSCORES"),
      this.redis.pttl(key),
    ]);
    const byShard = new Map<string, (string | number)[]>();
    for (let i = 0; i + 1 < entries.length; i += 2) {
      const ref = entries[i] ?? "";
      const eventId = ref.slice(0, ref.lastIndexOf("/"));
      const target = `${this.toTags[placement.ofHash(idHash(eventId)) ?? 0]}:fu:smsfailed`;
      if (target === key) continue;
      byShard.set(target, [...(byShard.get(target) ?? []), Number(entries[i + 1]), ref]);
    }
    for (const [target, moved] of byShard) {
      await this.laterExpiry(this.redis.multi().zadd(target, ...moved), target, ttl).exec();
      await this.redis.zrem(key, ...moved.filter((_, n) => n % 2 === 1).map((ref) => String(ref)));
    }
  }

  /**
   * `write` followed by giving `target` the later expiry of its own and the moved key's (`ttl`,
   * its PTTL: one read in its last millisecond keeps 1 ms); a key just made has none yet, and a
   * moved key without expiry leaves the target's as it is.
   */
  private laterExpiry(write: ChainableCommander, target: string, ttl: number): ChainableCommander {
    if (ttl === -1 || ttl === -2) return write;
    return write.pexpire(target, restoreTtl(ttl), "GT").pexpire(target, restoreTtl(ttl), "NX");
  }

  /**
   * The new shards of a shard key; "fold" for counts of a shard that no longer exists; undefined
   * for what stays (the schedule, counts of a shard that still exists, names not ours).
   */
  private destinations(
    kind: string,
    rest: string,
    placement: EventPlacement,
    tagStays: boolean,
  ): number[] | "fold" | undefined {
    switch (kind) {
      case "e":
      case "p":
        // Without a customer, shard 0: where intake files refunds and opt-outs.
        return [placement.ofHash(rest.slice(2)) ?? 0];
      case "jq":
        // A step's mark of being queued again after its job was lost (`jq:<event hash>:<step>`):
        // with its purchase's record, where the job watch now looks at the step.
        return [placement.ofHash(rest.split(":")[1] ?? "") ?? 0];
      case "c":
      case "ls":
      case "ck":
      case "cs":
      case "ty":
      case "sent": {
        const shard = shardOfIdHash(rest.slice(rest.lastIndexOf(":") + 1), this.to);
        return shard === undefined ? undefined : [shard];
      }
      case "x":
        // An erasure marker names the customer by a keyed hash: no shard can be read off it.
        return Array.from({ length: this.to }, (_, n) => n);
      case "agg":
      case "due":
        return tagStays ? undefined : "fold";
      default:
        return undefined;
    }
  }

  /**
   * Copies a key with what is left of its expiry to other names; false when it is gone. Without `replace`, a
   * name already taken keeps its value.
   */
  private async copy(key: string, targets: readonly string[], replace = true): Promise<boolean> {
    const [dump, ttl] = await Promise.all([this.redis.dumpBuffer(key), this.redis.pttl(key)]);
    if (!dump || ttl === -2) return false;
    for (const target of targets) {
      if (replace) await this.redis.restore(target, restoreTtl(ttl), dump, "REPLACE");
      else
        await this.redis.restore(target, restoreTtl(ttl), dump).catch((error: Error) => {
          if (!/BUSYKEY/.test(error.message)) throw error;
        });
    }
    return true;
  }

  /**
   * Gives every shard a customer's erasure marker (when they were erased), keeping the latest
   * time and the longest expiry where a shard has one already; the old name goes unless it is
   * one of the new ones.
   */
  private async spreadErasure(key: string, targets: readonly string[]): Promise<void> {
    const [value, ttl] = await Promise.all([this.redis.get(key), this.redis.pttl(key)]);
    if (value === null || ttl === -2) return;
    for (const target of targets) {
      if (target === key) continue;
      const [existing, existingTtl] = await Promise.all([
        this.redis.get(target),
        this.redis.pttl(target),
      ]);
      const at = Math.max(Number(value), Number(existing ?? 0));
      // What is left of the expiry (one read in its last millisecond, PTTL 0, keeps 1 ms).
      const keep = ttl === -1 || existingTtl === -1 ? -1 : Math.max(restoreTtl(ttl), existingTtl);
      if (keep > 0) await this.redis.set(target, String(at), "PX", keep);
      else await this.redis.set(target, String(at));
    }
    if (!targets.includes(key)) await this.redis.del(key);
  }

  /**
   * Adds a count hash of a shard that no longer exists into shard 0's, crash-safe: it is first
   * copied into shard 0's slot under a name of its own, the original deleted, and that copy added
   * and deleted in one script. A run after a crash finds the copy (foldStaged) and finishes.
   */
  private async fold(key: string, tag: string, rest: string): Promise<void> {
    const staged = this.stagedName(tag, rest);
    if ((await this.redis.exists(staged)) === 0 && !(await this.copy(key, [staged]))) return;
    await this.redis.del(key);
    await this.redis.fuFoldCounts(staged, `${this.toTags[0]}:fu:${rest}`);
  }

  private stagedName(tag: string, rest: string): string {
    return `${this.toTags[0]}:fu:fold:${tag}:${rest}`;
  }

  /**
   * Finishes the folds a crashed run staged: the original (if the crash came before it was
   * deleted) goes first, so it is not folded again, then the staged copy is added.
   */
  async foldStaged(): Promise<number> {
    let folded = 0;
    const base = `${this.toTags[0]}:fu:fold:`;
    for await (const batch of scanKeys(this.redis, `${base}*`)) {
      await inBatches(batch, async (staged) => {
        const named = staged.slice(base.length);
        const tag = tagOf(named);
        const rest = named.slice(tag.length + 1);
        await this.redis.del(`${tag}:fu:${rest}`);
        await this.redis.fuFoldCounts(staged, `${this.toTags[0]}:fu:${rest}`);
        folded++;
      });
    }
    return folded;
  }

  /**
   * Gives every shard the pending-count days any shard has: a step that moved takes itself off its
   * day's count in its new shard, and a count is only taken from a day that exists there (a day
   * that has passed expired). The added counts are 0, with the day's expiry.
   */
  private async padPendingDays(): Promise<void> {
    const days = new Map<string, { field: string; expiresAt: number }>();
    for await (const batch of this.shardKeys(new Set(this.toTags), "due:")) {
      await inBatches(batch, async ({ key, rest }) => {
        if (days.has(rest)) return;
        const [fields, expiresAt] = await Promise.all([
          this.redis.hkeys(key),
          this.redis.pexpiretime(key),
        ]);
        if (fields[0] !== undefined) days.set(rest, { field: fields[0], expiresAt });
      });
    }
    const pads = this.toTags.flatMap((tag) =>
      [...days].map(([day, { field, expiresAt }]) => ({
        key: `${tag}:fu:${day}`,
        field,
        expiresAt,
      })),
    );
    await inBatches(pads, async ({ key, field, expiresAt }) => {
      if ((await this.redis.exists(key)) === 1) return;
      await this.redis.hincrby(key, field, 0);
      if (expiresAt > 0) await this.redis.pexpireat(key, expiresAt);
    });
  }

  /**
   * Moves the compact schedule's entries to their purchases' new shards: each bucket's entries are
   * appended to the same bucket of the new shard (its index gains the bucket), then the old
   * bucket keeps only those that stay. Leases and re-planning marks go: the promoter and the
   * re-planner take every bucket afresh. Entries of purchases that are gone are dropped (the
   * promoter would pass them over). A run that dies between the two may list a step twice in its
   * new bucket: the promoter makes one job of it (one job id per step).
   */
  async moveSchedule(placement: EventPlacement, counts: ReshardCounts): Promise<void> {
    await this.moveBuckets("t", placement, {
      moved: (n) => {
        counts.scheduledMoved += n;
      },
      dropped: () => {
        counts.scheduledDropped++;
      },
    });
  }

  /**
   * Moves the job watch's entries (`fu:j`, store/job-watch.ts) to their purchases' new shards, as
   * moveSchedule does the schedule's: a step whose job moved to its new shard's queue is looked
   * at there, where its record and its job now are (left in the old shard, it was dropped there
   * as gone, and its job was watched by nothing). A step listed twice after a run that died half
   * way is acted on once (JobWatch.markRequeued).
   */
  async moveJobWatch(placement: EventPlacement): Promise<void> {
    await this.moveBuckets("j", placement, {});
  }

  /**
   * The new shard of a schedule or watch entry's purchase: its placement, else shard 0 when its
   * record went there (moveShardKeys moves a record nothing places, its purchase unreadable and
   * its customer's history no longer listing it, to shard 0: its step goes with it, and is
   * promoted and ended there), else undefined (the purchase is gone: the entry is dropped).
   */
  private async shardOfEntry(
    placement: EventPlacement,
    eventId: string | undefined,
  ): Promise<number | undefined> {
    if (eventId === undefined) return undefined;
    const placed = placement.ofEvent(eventId);
    if (placed !== undefined) return placed;
    const [zero] = this.shardKeysOf(this.to);
    return zero && (await this.redis.exists(zero.eventRecord(eventId))) === 1 ? 0 : undefined;
  }

  /** The key names of every shard of a deployment of `shards`. */
  private shardKeysOf(shards: number): StoreKeys[] {
    return Array.from(
      { length: shards },
      (_, n) => new StoreKeys(shardScope(this.prefix, n, shards)),
    );
  }

  /** Moves the bucket lists of `kind` (`t` the schedule, `j` the job watch) to the new shards. */
  private async moveBuckets(
    kind: "t" | "j",
    placement: EventPlacement,
    count: { moved?: (n: number) => void; dropped?: () => void },
  ): Promise<void> {
    const newTags = new Set(this.toTags);
    for (const tag of this.fromTags) {
      const index = `${tag}:fu:${kind}`;
      const buckets = await this.redis.zrange(index, "0", "-1", "WITHSCORES");
      for (let i = 0; i + 1 < buckets.length; i += 2) {
        const bucket = buckets[i] ?? "";
        const start = Number(buckets[i + 1]);
        const key = `${index}:${bucket}`;
        const [elements, ttl] = await Promise.all([
          this.redis.lrange(key, 0, -1),
          this.redis.pttl(key),
        ]);
        const groups = new Map<string, string[]>();
        for (const element of elements) {
          const shard = await this.shardOfEntry(placement, scheduleEventId(element));
          if (shard === undefined) {
            count.dropped?.();
            continue;
          }
          const target = this.toTags[shard] ?? "";
          groups.set(target, [...(groups.get(target) ?? []), element]);
        }
        for (const [target, moving] of groups) {
          if (target === tag) continue;
          const targetKey = `${target}:fu:${kind}:${bucket}`;
          // The later expiry of the two; a bucket just made has none yet.
          await this.laterExpiry(this.redis.multi().rpush(targetKey, ...moving), targetKey, ttl)
            .zadd(`${target}:fu:${kind}`, start, bucket)
            .exec();
          count.moved?.(moving.length);
        }
        const staying = newTags.has(tag) ? (groups.get(tag) ?? []) : [];
        const marks = kind === "t" ? [`${key}:lease`, `${key}:replanned`] : [`${key}:lease`];
        const rewrite = this.redis.multi().del(key, ...marks);
        if (staying.length > 0) {
          rewrite.rpush(key, ...staying);
          if (ttl >= 0) rewrite.pexpire(key, restoreTtl(ttl));
        } else rewrite.zrem(index, bucket);
        await rewrite.exec();
      }
      if (!newTags.has(tag)) await this.redis.del(index);
    }
  }

  /**
   * Rewrites what global keys say of a purchase's shard: SMS sids, email Message-IDs, latest
   * check-ins, order links, discount codes, call scripts and owners' pending alerts (one SCAN of
   * the global keys), and replies. An event without a placement is read in shard 0.
   */
  async rewriteReferences(placement: EventPlacement, counts: ReshardCounts): Promise<void> {
    const shardOf = (eventId: string) => placement.ofEvent(eventId) ?? 0;
    const base = `${globalTag(this.prefix)}:fu:`;
    for await (const batch of scanKeys(this.redis, `${base}*`)) {
      await inBatches(batch, async (key) => {
        const rest = key.slice(base.length);
        const kind = rest.split(":", 1)[0] ?? "";
        const rewritten = await this.rewriteReference(kind, key, shardOf);
        counts.referencesRewritten += rewritten;
      });
    }
    const replies = this.global.replies();
    const scored = await this.redis.zrange(replies, "0", "-1", "WITHSCORES");
    for (let i = 0; i + 1 < scored.length; i += 2) {
      const raw = scored[i] ?? "";
      const { lines, shard } = decodeRef(raw);
      const next = shardOf(lines[0] ?? "");
      if (next === shard) continue;
      await this.redis
        .multi()
        .zrem(replies, raw)
        .zadd(replies, scored[i + 1] ?? "0", encodeRef(lines, next))
        .exec();
      counts.referencesRewritten++;
    }
  }

  /** Rewrites one global key's references to events; how many it changed. */
  private async rewriteReference(
    kind: string,
    key: string,
    shardOf: (eventId: string) => number,
  ): Promise<number> {
    switch (kind) {
      case "sid":
      case "mid":
      case "ci": {
        const raw = await this.redis.get(key);
        if (raw === null) return 0;
        const { lines, shard } = decodeRef(raw);
        const next = shardOf(lines[0] ?? "");
        if (next === shard) return 0;
        await this.redis.set(key, encodeRef(lines, next), "KEEPTTL", "XX");
        return 1;
      }
      case "o": {
        let changed = 0;
        for (const [field, value] of Object.entries(await this.redis.hgetall(key))) {
          if (!field.startsWith("e:")) continue;
          const next = shardOf(field.slice(2));
          if (linkShard(value) === next) continue;
          await this.redis.hset(key, field, orderLink(next));
          changed++;
        }
        return changed;
      }
      case "ol": {
        // A bucket of order links: `<11 characters of the order's hash><eventId>` → `s<shard>:…`.
        let changed = 0;
        for (const [field, value] of Object.entries(await this.redis.hgetall(key))) {
          if (field === "~") continue;
          const next = shardOf(field.slice(PACKED_ENTRY_CHARS));
          if (linkShard(value) === next) continue;
          await this.redis.hset(key, field, relinked(value, next));
          changed++;
        }
        return changed;
      }
      case "code": {
        const [eventId, shard] = await this.redis.hmget(key, "e", "h");
        if (!eventId) return 0;
        const next = shardOf(eventId);
        if (codeShard(shard) === next) return 0;
        await this.redis.hset(key, "h", next);
        return 1;
      }
      case "call": {
        const raw = await this.redis.get(key);
        if (raw === null) return 0;
        const stored = JSON.parse(raw) as { script?: { eventId?: string; shard?: number } };
        if (!stored.script?.eventId) return 0;
        const next = shardOf(stored.script.eventId);
        if ((stored.script.shard ?? 0) === next) return 0;
        stored.script.shard = next;
        await this.redis.set(key, JSON.stringify(stored), "KEEPTTL", "XX");
        return 1;
      }
      case "alerts": {
        // The window's state and a sending job's lease name no replies.
        if (key.endsWith(":state") || key.endsWith(":lease")) return 0;
        const ids = await this.redis.lrange(key, 0, -1);
        let changed = 0;
        const rewritten = ids.map((id) => {
          const ref = parseReplyId(id);
          if (!ref) return id;
          const next = shardOf(ref.eventId);
          if (next === ref.shard) return id;
          changed++;
          return replyId({ ...ref, shard: next });
        });
        if (changed === 0) return 0;
        const ttl = await this.redis.pttl(key);
        const write = this.redis
          .multi()
          .del(key)
          .rpush(key, ...rewritten);
        if (ttl > 0) write.pexpire(key, ttl);
        await write.exec();
        return changed;
      }
      default:
        return 0;
    }
  }

  /**
   * With more than one shard, intake claims each event id for the whole deployment (event-ids.ts
   * DeploymentEventIds): the purchases of a deployment that had one shard get their claims, with
   * their records' fingerprints and expiry.
   */
  async claimEventIds(counts: ReshardCounts): Promise<void> {
    if (this.to <= 1 || this.from > 1) return;
    for await (const batch of this.shardKeys(new Set(this.toTags), "e:")) {
      await inBatches(batch, async ({ key, rest }) => {
        const [fingerprint, expiresAt] = await Promise.all([
          this.redis.hget(key, "f"),
          this.redis.pexpiretime(key),
        ]);
        if (!fingerprint) return;
        const claim = `${globalTag(this.prefix)}:fu:id:${rest.slice(2)}`;
        const set =
          expiresAt > 0
            ? await this.redis.set(claim, fingerprint, "PXAT", expiresAt, "NX")
            : await this.redis.set(claim, fingerprint, "NX");
        if (set === "OK") counts.idsClaimed++;
      });
    }
  }

  /** Forgets which re-planning walks completed: every shard is walked again under the latest rules. */
  async forgetWalks(): Promise<void> {
    const key = this.global.rulesGenerations();
    const fields = (await this.redis.hkeys(key)).filter((field) => field.startsWith("w:"));
    if (fields.length > 0) await this.redis.hdel(key, ...fields);
  }
}

/** The event id of a schedule entry, in either form (follow-up-schedule.ts readEntries). */
function scheduleEventId(element: string): string | undefined {
  return readEntries([element])[0]?.eventId;
}
