import { customerHash } from "../domain/address-hash.js";
import type { CheckInGroup, CheckInOutcome } from "../domain/check-in-comparison.js";
import type { StatedConsent } from "../domain/consent-timeline.js";
import type { EventFingerprints } from "../domain/event-fingerprint.js";
import { CHANNELS, type Channel, type PurchaseCompleted } from "../domain/events.js";
import type { CooldownStep, CustomerHistory, RecentSteps, StepKind } from "../domain/rules.js";
import { checkInField, hourRetentionMs } from "./delivery-ledger.js";
import { hourOf, idHash, prefixOf, type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { sharedSecret } from "./shared-secrets.js";
import { CHANNEL_CODES, CHANNELS_BY_CODE } from "./step-record.js";
import { addressMemberWith } from "./suppression-list.js";

/** Where a customer's recent steps keep each rule's and kind's count of writes (`v:r:<rule id>`). */
const VERSION_FIELD = "v:";

/**
 * Each rule's and kind's (`r:<rule id>`, `k:<kind>`) count of writes of the customer's recent
 * steps as read (`#<count>`), absent for none: what a write of a plan made from them is checked
 * against (remember-steps.lua).
 */
export type CooldownVersions = ReadonlyMap<string, string>;

/** A customer's recent steps as read for planning, with the counts a write is checked against. */
export interface RecentStepsRead extends RecentSteps {
  readonly versions: CooldownVersions;
}

/** A step remembered under its rule's (`by: "rule"`) or its kind's cooldown (rememberSteps). */
export interface RememberedStep {
  readonly by: "rule" | "kind";
  /** The rule id or the kind. */
  readonly name: string;
  /** Its due time (epoch ms). */
  readonly at: number;
  readonly eventId: string;
  /** Its step's id (absent in the form before steps were told apart). */
  readonly stepId?: string;
}

/** The due times of `steps` per rule and per kind, as planning holds a step to them. */
export function recentOf(steps: readonly RememberedStep[]): RecentSteps {
  const found = { rule: new Map<string, number[]>(), kind: new Map<string, number[]>() };
  for (const { by, name, at } of steps) {
    const map = found[by];
    map.set(name, [...(map.get(name) ?? []), at]);
  }
  return { byRule: found.rule, byKind: found.kind as Map<StepKind, number[]> };
}

/** The event record's field holding the customer's earlier purchases as counted at first sight. */
const HISTORY_FIELD = "h";

/**
 * How many purchases a customer made before and when the latest was, for rules such as "loyal
 * customer": counted once per event, so redelivered events do not inflate it.
 */
/** A follow-up sent to a customer: which step, labelled, and when (epoch ms). */
export interface SentFollowUp {
  readonly eventId: string;
  readonly stepId: string;
  readonly channel: string;
  readonly kind: string;
  readonly ruleId: string;
  readonly at: number;
}

/**
 * What attributing a purchase reads of its customer, returned with the purchase's history (one
 * round trip): the latest follow-up sent, and the remembered check-ins by purchase hash.
 */
export interface PurchaseAttribution {
  readonly lastSent?: SentFollowUp;
  readonly checkIns: Readonly<Record<string, string>>;
}

/** A customer's check-in for one purchase, as remembered for the comparison of repeat purchases. */
export interface RememberedCheckIn extends CheckInOutcome {
  /** The purchase's hash (idHash of its event id), never the id itself. */
  readonly purchase: string;
  /** When it went out, or would have (epoch ms). */
  readonly at: number;
}

/** A customer's purchase history is forgotten after this long without a purchase. */
export const HISTORY_RETENTION_MS = 2 * 365 * 24 * 3600 * 1000;

/** A customer's latest purchases stay listed in their history after their records have gone. */
export const LISTED_PURCHASES = 100;

/**
 * Past this many fields in a history (and then each time it has doubled), its purchases whose
 * records have gone are taken out: a field a purchase (`e:`, with its order), and a few.
 */
const PRUNE_PAST_FIELDS = LISTED_PURCHASES + 20;

/** An idHash as the history notes an order by (22 base64url characters). */
const ID_HASH = /^[\w-]{22}$/;

/** A remembered check-in is kept for the attribution window after it and this. */
const CHECK_IN_MEMORY_SLACK_MS = 24 * 3600 * 1000;

export class CustomerHistoryStore {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;
  private secret: Promise<string> | undefined;

  constructor(
    redis: RedisClient,
    private readonly scope: Scope,
    private readonly options: { addressHashSecret?: string } = {},
  ) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  /** The key of the customer's erasure marker (named by their keyed hash). */
  async erasureKey(customerId: string): Promise<string> {
    return this.keys.erasedCustomer(customerHash(await this.addressSecret(), customerId));
  }

  /** ADDRESS_HASH_SECRET (or the deployment's shared one). */
  private addressSecret(): Promise<string> {
    this.secret ??= this.options.addressHashSecret
      ? Promise.resolve(this.options.addressHashSecret)
      : sharedSecret(this.redis, prefixOf(this.scope), "address-hash");
    return this.secret;
  }

  /**
   * Keeps the customer's history at least until `until` (epoch ms; never shorter): as long as a
   * purchase's record it lists, for a follow-up planned more than HISTORY_RETENTION_MS ahead, so
   * that an erasure still finds that purchase through it.
   */
  async keepUntil(customerId: string, until: number): Promise<void> {
    await this.redis.pexpireat(this.keys.customerHistory(customerId), Math.ceil(until), "GT");
  }

  /**
   * Remembers that the customer was erased at `at` (a later erasure moves it on), so that their
   * events from before are dropped when they arrive; kept `keepMs`. Forgets their history.
   */
  async markErased(customerId: string, at: number, keepMs: number): Promise<void> {
    await this.noteErasure(customerId, at, keepMs);
    await this.redis.del(this.keys.customerHistory(customerId));
  }

  /**
   * The erasure marker alone (markErased without forgetting the history), written before an
   * erasure reads the customer's purchases: a purchase being taken in at that moment either is
   * among them or schedules nothing (schedule-steps.lua).
   */
  async noteErasure(customerId: string, at: number, keepMs: number): Promise<void> {
    await keepLatestTime(this.redis, await this.erasureKey(customerId), at, keepMs);
  }

  /**
   * The customer's purchase history before this event, counting this event in for later ones.
   * Idempotent per event id; an id used before for other content (another fingerprint) is a
   * conflict and counts nothing. History is forgotten after `keepCustomerMs` without purchases. A
   * purchase made before the customer was erased records nothing (`erased`). Notes the purchase's
   * order (its id's idHash) and phone number (its keyed hash) beside it, for erasure (erasureLeads).
   */
  async recordPurchase(
    event: PurchaseCompleted,
    fingerprints: EventFingerprints,
    keepCustomerMs: number,
    keepEventMs: number,
  ): Promise<
    | { history: CustomerHistory; firstSeen: boolean; attribution: PurchaseAttribution }
    | { conflict: true }
    | { erased: true }
  > {
    const customerId = event.customer.id;
    const erasure = await this.erasureKey(customerId);
    const phone = event.customer.phone
      ? addressMemberWith(await this.addressSecret(), event.customer.phone)
      : "";
    const recordWith = (fingerprint: string) =>
      this.redis.fuRecordPurchase(
        this.keys.eventRecord(event.id),
        this.keys.customerHistory(customerId),
        erasure,
        this.keys.lastSent(customerId),
        this.keys.checkIns(customerId),
        new Date(event.occurredAt).toISOString(),
        keepCustomerMs,
        keepEventMs,
        fingerprint,
        event.id,
        Date.parse(event.occurredAt),
        idHash(event.orderId),
        phone,
        consentStated(event),
      );
    let answer = await recordWith(fingerprints[0]);
    // A conflict changed nothing: an earlier fingerprint of the event's may be the one kept (rare).
    for (const earlier of fingerprints.slice(1)) {
      if (answer[0] !== -1) break;
      answer = await recordWith(earlier);
    }
    const [count, last, firstSeen, lastSent, checkIns, prune] = answer;
    if (count === -1) return { conflict: true };
    if (count === -2) return { erased: true };
    if (prune === 1) await this.dropEndedPurchases(customerId);
    const history = last
      ? { previousPurchases: count, lastPurchaseAt: last }
      : { previousPurchases: count };
    const sent = lastSent ? sentFollowUpOf(lastSent) : undefined;
    const remembered: Record<string, string> = {};
    const pairs = checkIns ?? [];
    for (let i = 0; i + 1 < pairs.length; i += 2)
      remembered[pairs[i] as string] = pairs[i + 1] as string;
    return {
      history,
      firstSeen: firstSeen === 1,
      attribution: {
        ...(sent && { lastSent: sent }),
        checkIns: remembered,
      },
    };
  }

  /**
   * Takes out of a customer's list of purchases those past the latest LISTED_PURCHASES whose event
   * records have gone (retention ended): a purchase with a record, however old, stays listed, so
   * that erasure and the operator tools find it. Only for customers with many purchases, and only
   * each time their history has doubled since (`pn`), so a customer with thousands of live
   * purchases costs a purchase a constant amount of work on average, not a read of them all.
   */
  private async dropEndedPurchases(customerId: string): Promise<void> {
    const key = this.keys.customerHistory(customerId);
    const older = (await this.purchasesOf(customerId)).slice(LISTED_PURCHASES);
    const kept = await this.recordsKept(older);
    const ended = older.filter((_, i) => !kept[i]).map((p) => `e:${p.eventId}`);
    if (ended.length > 0) await this.redis.hdel(key, ...ended);
    const size = await this.redis.hlen(key);
    await this.redis.hset(key, "pn", Math.max(PRUNE_PAST_FIELDS, 2 * size));
  }

  /**
   * How many of `purchases` (purchasesOf's, latest first) past the latest LISTED_PURCHASES still
   * have their record: those a timeline does not list that can still be shown (by their order).
   * One whose records have gone is not counted, though the history names it until it is pruned.
   */
  async keptPastListed(purchases: readonly { eventId: string }[]): Promise<number> {
    return (await this.recordsKept(purchases.slice(LISTED_PURCHASES))).filter(Boolean).length;
  }

  /** Whether each purchase's event record is still kept (retention not ended). */
  private async recordsKept(purchases: readonly { eventId: string }[]): Promise<boolean[]> {
    if (purchases.length === 0) return [];
    // A pipeline, not a script: the records are not known before the list is read (rare path).
    const pipeline = this.redis.pipeline();
    for (const { eventId } of purchases) pipeline.exists(this.keys.eventRecord(eventId));
    const exists = (await pipeline.exec()) ?? [];
    return purchases.map((_, i) => exists[i]?.[1] !== 0);
  }

  /**
   * The customer's purchases (event ids), latest first: every purchase whose record lives, and
   * ended ones among the latest LISTED_PURCHASES.
   */
  async purchasesOf(customerId: string): Promise<{ eventId: string; purchasedAt: number }[]> {
    const all = await this.redis.hgetall(this.keys.customerHistory(customerId));
    return (
      Object.entries(all)
        .filter(([field]) => field.startsWith("e:"))
        // `<purchase time>`, then `:<order id's idHash>` since December 2026 (record-purchase.lua).
        .map(([field, entry]) => ({
          eventId: field.slice(2),
          purchasedAt: Number.parseInt(entry, 10),
        }))
        .sort((a, b) => b.purchasedAt - a.purchasedAt || a.eventId.localeCompare(b.eventId))
    );
  }

  /**
   * What erasure reaches from the customer's history besides their purchases (record-purchase.lua
   * notes both at intake, since this version): the orders of their listed purchases (idHash of
   * each order id: OrderStore.forgetByHash) and the phone numbers of their purchases (each as
   * SuppressionList.addressMember gives it, a keyed hash: the number's latest check-in and
   * "texted before" mark are named by it).
   */
  async erasureLeads(customerId: string): Promise<{ orders: string[]; numbers: string[] }> {
    const all = await this.redis.hgetall(this.keys.customerHistory(customerId));
    const orders = new Set<string>();
    const numbers: string[] = [];
    for (const [field, value] of Object.entries(all)) {
      if (field.startsWith("ph:")) numbers.push(field.slice(3));
      if (!field.startsWith("e:")) continue;
      // `<purchase time>:<order's idHash>`; only the time in histories of earlier versions.
      const order = value.split(":")[1];
      if (order !== undefined && ID_HASH.test(order)) orders.add(order);
    }
    return { orders: [...orders], numbers };
  }

  /**
   * Notes a discount code issued to the customer (by discountCodeHash) until its stored form
   * expires (`keepUntil`, epoch ms), so that their erasure finds it also once the record of the
   * purchase that sent it has gone (note-code.lua); codes of theirs past that are taken out.
   */
  async noteCode(customerId: string, codeHash: string, keepUntil: number, now: number) {
    await this.redis.fuNoteCode(this.keys.customerHistory(customerId), codeHash, keepUntil, now);
  }

  /**
   * Per channel, the consent the customer's latest purchase (by purchase time) that stated one
   * gave, and that purchase's time (record-purchase.lua, `cn`): theirs now, for the send-time
   * guard.
   */
  async latestConsent(customerId: string): Promise<StatedConsent> {
    const stated = await this.redis.hget(this.keys.customerHistory(customerId), "cn");
    const consent: Partial<Record<Channel, { given: boolean; at: number }>> = {};
    for (const [, code = "", flag, at = ""] of (stated ?? "").matchAll(
      /([a-z])([01])([0-9a-z]+)/g,
    )) {
      const channel = CHANNELS_BY_CODE.get(code);
      if (channel) consent[channel] = { given: flag === "1", at: Number.parseInt(at, 36) };
    }
    return consent;
  }

  /** The discount codes (by discountCodeHash) noted as issued to the customer (noteCode). */
  async codesOf(customerId: string): Promise<string[]> {
    const all = await this.redis.hgetall(this.keys.customerHistory(customerId));
    return Object.keys(all)
      .filter((field) => field.startsWith("dc:"))
      .map((field) => field.slice(3));
  }

  /**
   * When the steps planned for the customer's other purchases fall due, per rule and per kind
   * (for cooldowns); steps of `eventId` itself (a redelivered or re-planned purchase) do not count.
   * With each rule's and kind's count of writes as read (`versions`), for rememberSteps to refuse
   * a plan made from them once another purchase's step under the same cooldown was written since.
   */
  async recentSteps(customerId: string, eventId: string): Promise<RecentStepsRead> {
    const { steps, versions } = await this.rememberedSteps(customerId);
    return { ...recentOf(steps.filter((step) => step.eventId !== eventId)), versions };
  }

  /**
   * Every step remembered under a cooldown for the customer's purchases (each with its purchase's
   * event id), and the counts of writes as read: for `replan --dry-run`, which sets the steps of
   * the purchases it re-plans in the place of what was remembered of them, as the workers will.
   */
  async rememberedSteps(
    customerId: string,
  ): Promise<{ steps: RememberedStep[]; versions: CooldownVersions }> {
    const all = await this.redis.hgetall(this.keys.recentSteps(customerId));
    const steps: RememberedStep[] = [];
    const versions = new Map<string, string>();
    for (const [field, value] of Object.entries(all)) {
      // `v:<r:|k:…>` = `#<count>` (remember-steps.lua).
      if (field.startsWith(VERSION_FIELD)) {
        versions.set(field.slice(VERSION_FIELD.length), value);
        continue;
      }
      // `<r:|k:…> <step id> <event id>` = `<due>`; before, `<r:|k:…>` = `<due> <event id>`
      // (rule ids, step ids and kinds have no space).
      const [key = "", stepId] = field.split(" ", 2);
      const space = value.indexOf(" ");
      const [at, of] =
        stepId === undefined
          ? [Number(value.slice(0, space)), value.slice(space + 1)]
          : [Number(value), field.slice(key.length + stepId.length + 2)];
      const by = key.startsWith("r:") ? "rule" : key.startsWith("k:") ? "kind" : undefined;
      if (!by || !Number.isFinite(at)) continue;
      steps.push({
        by,
        name: key.slice(2),
        at,
        eventId: of,
        ...(stepId !== undefined && { stepId }),
      });
    }
    return { steps, versions };
  }

  /**
   * Remembers each step planned for a purchase (replacing what was remembered of it before);
   * only under the rules and kinds given (those with a cooldown), so most purchases write
   * nothing. Steps of any purchase due before `pruneBefore` (cooldownReach) are forgotten.
   * Nothing is written for a purchase made (`purchasedAt`, epoch ms) before the customer was
   * erased (`erased`). With `readAs` (recentSteps' versions, as the plan was made from), nothing
   * is written either when another step under one of the same rules or kinds was written since
   * (`conflict`): the purchase is to be planned again from a fresh read (remember-steps.lua).
   * With `generation` (the rules the steps were planned with), nothing is written when a newer
   * generation's steps of this purchase were remembered first (`superseded`). `replanned`: the
   * purchase's steps a re-plan decided (kept, moved, skipped or cancelled), whose entries other
   * than those of `steps` go: a step it ended, or the kind a step no longer has, holds back no
   * other purchase (a step ended otherwise, such as by a refund, keeps holding them).
   */
  async rememberSteps(
    customerId: string,
    { eventId, purchasedAt }: { readonly eventId: string; readonly purchasedAt: number },
    steps: readonly CooldownStep[],
    keepMs: number,
    pruneBefore: number,
    readAs?: CooldownVersions,
    generation?: number,
    replanned: readonly string[] = [],
  ): Promise<"remembered" | "conflict" | "erased" | "superseded"> {
    const entries = steps.flatMap((step) => [
      ...(step.byRule ? [`r:${step.ruleId} ${step.stepId}`, step.dueAt] : []),
      ...(step.byKind ? [`k:${step.kind} ${step.stepId}`, step.dueAt] : []),
    ]);
    if (entries.length === 0 && replanned.length === 0) return "remembered";
    const cooldowns = new Set(
      steps.flatMap((step) => [
        ...(step.byRule ? [`r:${step.ruleId}`] : []),
        ...(step.byKind ? [`k:${step.kind}`] : []),
      ]),
    );
    const checks = readAs ? [...cooldowns].flatMap((key) => [key, readAs.get(key) ?? ""]) : [];
    const written = await this.redis.fuRememberSteps(
      this.keys.recentSteps(customerId),
      await this.erasureKey(customerId),
      this.keys.eventRecord(eventId),
      purchasedAt,
      keepMs,
      eventId,
      pruneBefore,
      generation ?? "",
      checks.length / 2,
      ...checks,
      replanned.length,
      ...replanned,
      ...entries,
    );
    if (written === -1) return "erased";
    if (written === -2) return "conflict";
    return written === -3 ? "superseded" : "remembered";
  }

  /** Forgets how the customer's check-ins ended: for one erased while a check-in was on its way. */
  async forgetCheckIns(customerId: string): Promise<void> {
    await this.redis.del(this.keys.checkIns(customerId));
  }

  /**
   * Remembers how the check-in of the customer's purchase `eventId` ended, at `at` (when it went
   * out, or would have), and counts the customer once into that hour's comparison group: the
   * first outcome per purchase counts. Kept for the attribution window after `at` and a day.
   */
  async rememberCheckIn(
    customerId: string,
    eventId: string,
    outcome: CheckInOutcome,
    at: number,
    now: number,
    windowMs: number,
  ): Promise<boolean> {
    const hour = hourOf(at);
    const counted = await this.redis.fuRememberCheckIn(
      this.keys.checkIns(customerId),
      this.keys.ledgerHour(hour),
      idHash(eventId),
      `${outcome.group} ${Math.round(at)} ${outcome.code ?? "-"}`,
      checkInField(outcome, false),
      hourRetentionMs(hour, now),
      now,
      windowMs + CHECK_IN_MEMORY_SLACK_MS,
      Math.round(at),
    );
    return counted === 1;
  }

  /** The history recorded when the event was first planned (none if it never was). */
  async historyAt(eventId: string): Promise<CustomerHistory> {
    const count = await this.redis.hget(this.keys.eventRecord(eventId), HISTORY_FIELD);
    return { previousPurchases: count ? Number(count) : 0 };
  }
}

/**
 * The customer's remembered check-ins (as recordPurchase returns them: purchase hash → "group at
 * code") that a purchase (`eventId`, at `purchasedAt`) came within `windowMs` after; never the
 * purchase's own check-in.
 */
export function checkInsAnsweredBy(
  remembered: Readonly<Record<string, string>>,
  eventId: string,
  purchasedAt: number,
  windowMs: number,
): RememberedCheckIn[] {
  const own = idHash(eventId);
  const answered: RememberedCheckIn[] = [];
  for (const [purchase, value] of Object.entries(remembered)) {
    const [group, at, code] = value.split(" ");
    const when = Number(at);
    if (purchase === own || (group !== "sent" && group !== "skipped")) continue;
    if (!(when <= purchasedAt && purchasedAt <= when + windowMs)) continue;
    answered.push({
      purchase,
      group: group as CheckInGroup,
      at: when,
      ...(code !== undefined && code !== "-" && { code }),
    });
  }
  return answered;
}

/** A remembered sent follow-up; undefined when the value is not one (it then attributes nothing). */
function sentFollowUpOf(raw: string): SentFollowUp | undefined {
  try {
    // `p`: the one it replaced, kept for a text that turns out never to have gone (settle-sent.lua).
    const { p: _replaced, ...parsed } = (JSON.parse(raw) ?? {}) as Partial<SentFollowUp> & {
      p?: unknown;
    };
    return typeof parsed.eventId === "string" && typeof parsed.at === "number"
      ? (parsed as SentFollowUp)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sets `key` to the epoch ms `at` unless it holds a later one, kept `keepMs` from now: an erasure
 * marker (a later erasure moves it on, an earlier one run late does not move it back).
 */
export async function keepLatestTime(
  redis: RedisClient,
  key: string,
  at: number,
  keepMs: number,
): Promise<void> {
  const previous = Number((await redis.get(key)) ?? 0);
  await redis.set(key, String(Math.max(previous, at)), "PX", keepMs);
}

/** The consent a purchase states, as record-purchase.lua takes it (`e1 s0`: email yes, SMS no). */
function consentStated(event: PurchaseCompleted): string {
  return CHANNELS.flatMap((channel) => {
    const given = event.customer.consent?.[channel];
    return given === undefined ? [] : [`${CHANNEL_CODES[channel]}${given ? 1 : 0}`];
  }).join(" ");
}
