import { hash } from "node:crypto";
import { addressHash, customerHash, normalizeAddress } from "../domain/address-hash.js";
import { CHANNELS, type Channel } from "../domain/events.js";
import { AGGREGATE_RETENTION_MS, entryFields, type LedgerEntry } from "./delivery-ledger.js";
import { hourOf, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import type { ReplicaWait } from "./replica-wait.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { sharedSecret } from "./shared-secrets.js";

/**
 * How long when a number last opted out is remembered: a spooled webhook waits on its worker's
 * disk until that worker runs again, which is rarely longer.
 */
const OPT_OUT_TIME_MS = 400 * 24 * 3600 * 1000;

/** The members of a number's opt-out times (StoreKeys.phoneOptedOutAt), one per scope. */
const OPT_OUT_TIME_FIELDS = { all: "at", marketing: "offers" } as const satisfies Record<
  OptOutScope,
  string
>;
/**
 * Beside the times, how many opt-outs of each scope were noted (a count, not a time: replicas'
 * clocks may differ, the order Redis ran them in does not).
 */
const OPT_OUT_COUNT_FIELDS = { all: "n", marketing: "n-offers" } as const satisfies Record<
  OptOutScope,
  string
>;

/** How many opt-outs of a number were noted, of each scope (SuppressionList.optOutCounts). */
export type OptOutCounts = Readonly<Record<OptOutScope, number>>;

/** Who a suppression is about: a customer id, an address, or an address known only by its hash. */
export interface SuppressionTarget {
  readonly customerId?: string;
  /** The customer id's keyed hash (domain/address-hash `customerHash`), as unsubscribe tokens carry it. */
  readonly customerHash?: string;
  readonly address?: string;
  /** The address's keyed hash (see domain/address-hash), as unsubscribe tokens carry it. */
  readonly addressHash?: string;
  /** The customer's list member (`k:<keyed hash>`, customerMember), as a call's script keeps it. */
  readonly customerMember?: string;
}

/** What an opt-out covers: every follow-up on the channel, or offers (marketing steps) only. */
export type OptOutScope = "all" | "marketing";

/**
 * How a number was opted out: by a text (an SMS STOP, or Twilio's 21610 saying the number texted
 * STOP to it), which a texted START undoes, or any other way (a 9 pressed on a call, an event, a
 * link), which it does not undo on calls.
 */
export type OptOutWay = "text" | "other";

/**
 * The channel whose opt-outs of a number made other than by text a texted START leaves standing:
 * START resubscribes to texts, not to calls declined on the keypad or by an event.
 */
const KEPT_FROM_START: Channel = "voice";

export interface SuppressionOptions {
  /** ADDRESS_HASH_SECRET; when unset, the deployment's shared secret kept in Redis. */
  readonly addressHashSecret?: string;
  /** Waits for replicas after an opt-out (REDIS_WAIT_REPLICAS): it must survive a failover. */
  readonly replicaWait?: ReplicaWait;
}

/**
 * Who must not be contacted on a channel, by customer id and by address or number. Addresses are
 * stored as keyed hashes (`h:`): the list answers "is this one suppressed?" without holding a
 * readable copy. Entries written before keyed hashes (`a:`, a plain hash) are still matched.
 */
export class SuppressionList {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;
  private secret?: Promise<string>;

  constructor(
    redis: RedisClient,
    private readonly prefix: string,
    private readonly options: SuppressionOptions = {},
  ) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Adds the customer and/or the address to the channel's list and, when one of them was not on
   * it yet, counts `countAs` in the same step. True if either was new. A number opted out of
   * calls other than by text (`way`) is also marked on the list (`d:<keyed hash>`, not counted),
   * so that a texted START (allow) leaves its calls off.
   */
  async suppress(
    channel: Channel,
    who: SuppressionTarget,
    countAs?: { readonly entry: LedgerEntry; readonly now: number },
    scope: OptOutScope = "all",
    way: OptOutWay = "other",
  ): Promise<boolean> {
    const members = await this.members(who, "write");
    if (members.length === 0) return false;
    const list =
      scope === "all" ? this.keys.suppressions(channel) : this.keys.marketingSuppressions(channel);
    // The marks go in with the opt-out, in one script: a START at that moment sees both or neither.
    const declined = way === "other" && channel === KEPT_FROM_START ? declineMarks(members) : [];
    const added = await this.redis.fuSuppress(
      list,
      this.keys.globalLedgerHour(hourOf(countAs?.now ?? 0)),
      AGGREGATE_RETENTION_MS,
      countAs ? JSON.stringify(entryFields(countAs.entry)) : "",
      declined.join(" "),
      ...members,
    );
    if (added > 0 || declined.length > 0) await this.options.replicaWait?.after(list);
    return added > 0;
  }

  /** Suppresses an address known only by its member (see `addressMember`). */
  async suppressMember(channel: Channel, member: string): Promise<boolean> {
    const list = this.keys.suppressions(channel);
    const added = (await this.redis.sadd(list, member)) > 0;
    if (added) await this.options.replicaWait?.after(list);
    return added;
  }

  /**
   * Notes when a number opted out (`at`, epoch ms; of offers only with `scope`; an earlier time
   * does not replace a later one), so that an opt-in sent before it and handled after it (a START
   * replayed from the webhook spool) can tell it is stale: see `optedOutAfter`.
   */
  async noteOptOutAt(
    who: SuppressionTarget,
    at: number,
    scope: OptOutScope = "all",
  ): Promise<void> {
    for (const member of await this.addressMembers(who)) {
      const key = this.keys.phoneOptedOutAt(member);
      // A pipeline: each write stands on its own (the time only moves later, the count only up).
      // A Redis out of memory refuses them with its OOM error, which the webhooks spool for.
      const results = await this.redis
        .pipeline()
        .zadd(key, "GT", Math.round(at), OPT_OUT_TIME_FIELDS[scope])
        .zincrby(key, 1, OPT_OUT_COUNT_FIELDS[scope])
        .pexpire(key, OPT_OUT_TIME_MS)
        .exec();
      const failed = results?.find(([error]) => error)?.[0];
      if (failed) throw failed;
    }
  }

  /**
   * How many opt-outs of the number were noted so far (noteOptOutAt), of each scope: read when a
   * START comes in, so that `allow` can tell an opt-out handled while it was being applied.
   */
  async optOutCounts(who: SuppressionTarget): Promise<OptOutCounts> {
    const counts = { all: 0, marketing: 0 };
    for (const member of await this.addressMembers(who)) {
      const [all, offers] = await this.redis.zmscore(
        this.keys.phoneOptedOutAt(member),
        OPT_OUT_COUNT_FIELDS.all,
        OPT_OUT_COUNT_FIELDS.marketing,
      );
      counts.all += Number(all ?? 0);
      counts.marketing += Number(offers ?? 0);
    }
    return counts;
  }

  /**
   * Before an opt-out of texts is written (an event, an operator's, a link's): notes its numbers'
   * time, so that a START sent before it and replayed from the webhook spool while or after it is
   * written does not undo it. Nothing for email or calls alone: a START takes a number off no
   * list of calls declined that way (their `d:` mark keeps it, see suppress), and a time noted
   * for them would keep a START from bringing the number's texts back.
   */
  async noteNumbersOptingOut(
    channels: readonly Channel[],
    numbers: Iterable<SuppressionTarget>,
    scope: OptOutScope,
    at: number,
  ): Promise<void> {
    if (!channels.includes("sms")) return;
    for (const who of numbers) await this.noteOptOutAt(who, at, scope);
  }

  /**
   * What the number opted out of later than `at` (noteOptOutAt): every follow-up, else offers
   * only, else undefined.
   */
  async optedOutAfter(who: SuppressionTarget, at: number): Promise<OptOutScope | undefined> {
    let later: OptOutScope | undefined;
    for (const member of await this.addressMembers(who)) {
      const [all, offers] = await this.redis.zmscore(
        this.keys.phoneOptedOutAt(member),
        OPT_OUT_TIME_FIELDS.all,
        OPT_OUT_TIME_FIELDS.marketing,
      );
      if (all !== null && Number(all) > at) return "all";
      if (offers !== null && Number(offers) > at) later = "marketing";
    }
    return later;
  }

  /**
   * Removes them again (SMS START), in every form and scope stored (with `keepOffers`, every scope
   * but offers only); but on calls not a number marked as opted out of them other than by
   * text (suppress's `way`: a 9 pressed on a call, an event, a link), whose entry stays on that
   * list. True when something stayed. With `sentAt` (when the START was first delivered), the
   * number's opt-out times are read in the same script: "stale", and nothing removed, when it
   * opted out of everything after `sentAt`; the list of offers stays when it opted out of offers
   * after it. With `seen` (optOutCounts when the START came in), likewise "stale" when an opt-out
   * of everything was noted since, and the list of offers stays when one of offers was: an
   * opt-out handled while the START was applied came after it, whatever the clocks say.
   */
  async allow(
    channel: Channel,
    who: SuppressionTarget,
    options: {
      readonly keepOffers?: boolean;
      readonly sentAt?: number;
      readonly seen?: OptOutCounts;
    } = {},
  ): Promise<boolean | "stale"> {
    const members = await this.members(who, "read");
    if (members.length === 0) return false;
    // Checked and removed in one script (allow.lua), against a decline suppressed at that moment,
    // and for a START given its time, against an opt-out noted meanwhile.
    const marks = channel === KEPT_FROM_START ? declineMarks(members) : [];
    const times =
      options.sentAt === undefined && options.seen === undefined
        ? []
        : (await this.addressMembers(who)).map((member) => this.keys.phoneOptedOutAt(member));
    const kept = await this.redis.fuAllow(
      2 + times.length,
      this.keys.suppressions(channel),
      this.keys.marketingSuppressions(channel),
      ...times,
      marks.join(" "),
      options.keepOffers ? "keep-offers" : "",
      options.sentAt === undefined ? "" : Math.round(options.sentAt),
      options.seen === undefined ? "" : `${options.seen.all} ${options.seen.marketing}`,
      ...members,
    );
    if (kept < 0) return "stale";
    return kept > 0;
  }

  /** Whether either the customer or the address opted out of the channel (of offers, with scope). */
  async isSuppressed(
    channel: Channel,
    who: SuppressionTarget,
    scope: OptOutScope = "all",
  ): Promise<boolean> {
    const members = await this.members(who, "read");
    if (members.length === 0) return false;
    const key =
      scope === "all" ? this.keys.suppressions(channel) : this.keys.marketingSuppressions(channel);
    const found = await this.redis.smismember(key, ...members);
    return found.some((flag) => flag === 1);
  }

  /**
   * For each channel, whether its target opted out of everything, or of offers only: every list
   * asked in one round trip. Intake asks the same question with its order read
   * (OrderStore.getWithOptOuts), through optOutQuery and optOutAnswer.
   */
  async optOutsOf(
    targets: readonly { readonly channel: Channel; readonly who: SuppressionTarget }[],
  ): Promise<{ all: Set<Channel>; marketing: Set<Channel> }> {
    const query = await this.optOutQuery(targets);
    if (query.lists.length === 0) return optOutAnswer(query, []);
    // One script, not a pipeline: a pipeline copies every script defined on the connection.
    const flags = await this.redis.fuOptOuts(
      query.lists.length,
      ...query.lists,
      JSON.stringify(query.members),
    );
    return optOutAnswer(query, flags);
  }

  /** The lists and members that answer optOutsOf for these targets (global keys). */
  async optOutQuery(
    targets: readonly { readonly channel: Channel; readonly who: SuppressionTarget }[],
  ): Promise<OptOutQuery> {
    const lists: string[] = [];
    const members: string[][] = [];
    const asked: { channel: Channel; scope: OptOutScope }[] = [];
    // Channels share the customer and often an address (SMS and voice): hash each once.
    const hashed = new Map<string, string>();
    for (const { channel, who } of targets) {
      const forms = await this.members(who, "read", hashed);
      if (forms.length === 0) continue;
      lists.push(this.keys.suppressions(channel), this.keys.marketingSuppressions(channel));
      members.push(forms, forms);
      asked.push({ channel, scope: "all" }, { channel, scope: "marketing" });
    }
    return { lists, members, asked };
  }

  /** The list's member for an address (its keyed hash), to keep beside a sent message. */
  async addressMember(address: string): Promise<string> {
    return addressMemberWith(await this.addressSecret(), address);
  }

  /** The list's member for a customer id (its keyed hash, `k:`). */
  async customerMember(customerId: string): Promise<string> {
    return `k:${customerHash(await this.addressSecret(), customerId)}`;
  }

  /**
   * Replaces a customer's plain-id entries and their addresses' unkeyed-hash entries (both written
   * before December 2026; an unkeyed hash of a number is undone by hashing every number) by their
   * keyed hashes, on every list: what erasure does, so an erased customer who opted out stays
   * opted out. The keyed entry is added (and waited for, with REDIS_WAIT_REPLICAS) before the old
   * one goes: an erasure stopped in between, or a failover, leaves both, and running it again
   * finishes it. Returns how many entries were replaced.
   */
  async hashCustomerEntries(
    customerId: string,
    addresses: readonly string[] = [],
  ): Promise<number> {
    const forms: [legacy: string, member: string][] = [
      [legacyCustomerMember(customerId), await this.customerMember(customerId)],
    ];
    for (const address of addresses)
      forms.push([legacyAddressMember(address), await this.addressMember(address)]);
    let replaced = 0;
    for (const channel of CHANNELS) {
      for (const key of [
        this.keys.suppressions(channel),
        this.keys.marketingSuppressions(channel),
      ]) {
        for (const [legacy, member] of forms) {
          if ((await this.redis.sismember(key, legacy)) !== 1) continue;
          await this.redis.sadd(key, member);
          await this.options.replicaWait?.after(key);
          await this.redis.srem(key, legacy);
          replaced++;
        }
      }
    }
    return replaced;
  }

  /** Members to write (current forms), or to look for and remove (earlier forms too). */
  private async members(
    who: SuppressionTarget,
    use: "write" | "read",
    hashed = new Map<string, string>(),
  ): Promise<string[]> {
    const once = async (
      form: string,
      value: string,
      hash: (value: string) => Promise<string> | string,
    ) => {
      const known = hashed.get(`${form}\0${value}`);
      if (known !== undefined) return known;
      const member = await hash(value);
      hashed.set(`${form}\0${value}`, member);
      return member;
    };
    const members: string[] = [];
    if (who.customerId) {
      members.push(await once("k", who.customerId, (id) => this.customerMember(id)));
      if (use === "read") members.push(legacyCustomerMember(who.customerId));
    }
    if (who.customerHash) members.push(`k:${who.customerHash}`);
    if (who.customerMember?.startsWith("k:")) members.push(who.customerMember);
    if (who.addressHash) members.push(`h:${who.addressHash}`);
    if (who.address) {
      members.push(await once("h", who.address, (address) => this.addressMember(address)));
      if (use === "read") members.push(await once("a", who.address, legacyAddressMember));
    }
    return members;
  }

  /** The keyed-hash members of an address (not a customer id): what noteOptOutAt keys by. */
  private async addressMembers(who: SuppressionTarget): Promise<string[]> {
    return this.members(
      { ...who, customerId: undefined, customerHash: undefined, customerMember: undefined },
      "write",
    );
  }

  private addressSecret(): Promise<string> {
    this.secret ??= this.options.addressHashSecret
      ? Promise.resolve(this.options.addressHashSecret)
      : sharedSecret(this.redis, this.prefix, "address-hash");
    return this.secret;
  }
}

/**
 * An opt-out question: per suppression list (global keys), the members to look for, and which
 * channel and scope each list answers for.
 */
export interface OptOutQuery {
  readonly lists: readonly string[];
  readonly members: readonly (readonly string[])[];
  readonly asked: readonly { readonly channel: Channel; readonly scope: OptOutScope }[];
}

/** The channels a query's flags (1: the list holds one of its members) say were opted out of. */
export function optOutAnswer(
  query: OptOutQuery,
  flags: readonly number[],
): { all: Set<Channel>; marketing: Set<Channel> } {
  const found = { all: new Set<Channel>(), marketing: new Set<Channel>() };
  flags.forEach((flag, index) => {
    const question = query.asked[index];
    if (question && flag === 1) found[question.scope].add(question.channel);
  });
  return found;
}

/**
 * The marks (`d:<keyed hash>`) of the addresses among a list's members (`h:<keyed hash>`): the
 * number was opted out of the list's channel other than by text. Not a member any opt-out query
 * asks for, so it suppresses nothing by itself; kept as long as the opt-out it qualifies.
 */
function declineMarks(members: readonly string[]): string[] {
  return members
    .filter((member) => member.startsWith("h:"))
    .map((member) => `d:${member.slice(2)}`);
}

/** How versions before December 2026 stored a customer: the id itself. */
function legacyCustomerMember(customerId: string): string {
  return `c:${customerId}`;
}

/** How versions before December 2026 stored an address: an unkeyed hash. */
function legacyAddressMember(address: string): string {
  const digest = hash("sha256", normalizeAddress(address), "base64url");
  return `a:${digest.slice(0, 22)}`;
}

/** An address's member in the lists (`h:<keyed hash>`), under ADDRESS_HASH_SECRET `secret`. */
export function addressMemberWith(secret: string, address: string): string {
  return `h:${addressHash(secret, address)}`;
}
