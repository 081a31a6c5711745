import { createHash } from "node:crypto";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/** A number texted within this long gets no opt-out line again; after it, its next text does. */
const TEXTED_MEMORY_MS = 365 * 24 * 3600 * 1000;

/** What a number's mark "texted before" holds of the SMS that left it: 96 bits of its sid's SHA-256. */
function textedBy(sid: string): string {
  return createHash("sha256").update(sid).digest("base64url").slice(0, 16);
}
/**
 * How long Twilio's statuses of an SMS that came before its reference are kept: the reference is
 * written moments after Twilio's answer, or by the job's retry after a Redis error midway.
 */
export const EARLY_STATUS_MS = 3600 * 1000;
/** Statuses kept per SMS before its reference at most (Twilio posts four or five). */
const MAX_EARLY_STATUSES = 20;

/**
 * How long the charge of an erased customer's SMS is kept for its give-back (keepErasedCharge):
 * Twilio reports `canceled` or `failed` within hours of the send; a week covers its retries of the
 * callback and a webhook spool replayed late, as the webhook receipts' week does.
 */
const ERASED_CHARGE_MS = 7 * 24 * 3600 * 1000;

/**
 * An SMS's final statuses after which its `canceled` or `failed` changes nothing: it went out, and
 * its charge stays (no charge id is kept for it once its customer is erased).
 */
export const DELIVERY_SETTLED: ReadonlySet<string> = new Set([
  "delivered",
  "read",
  "undelivered",
  "partially_delivered",
]);

/** A status callback that came before the SMS's reference was written (keepEarlyStatus). */
export interface EarlySmsStatus {
  readonly status: string;
  readonly errorCode?: number;
  /** When it came in (epoch ms). */
  readonly receivedAt: number;
}

/** Which step of which event a message belongs to, and the shard the event's records live in. */
export interface StepRef {
  readonly eventId: string;
  readonly stepId: string;
  /** The shard of the event's customer (FOLLOW_UP_SHARDS): where its records are. */
  readonly shard: number;
}

/**
 * How a reference is stored: its lines, newline-separated, as before shards, with the shard as an
 * extra last line `@<shard>` when it is not 0:
 * - SMS sid: `<eventId>\n<stepId>\n<recipient member>[\n@<shard>]`
 * - email Message-ID, latest check-in: `<eventId>\n<stepId>[\n@<shard>]`
 * - replies (zset members): `<eventId>\n<stepId>\n<n>[\n@<shard>]` (before numbers: no `<n>`)
 * The last line of a reference without a shard is a step id (it has a dot), a recipient member
 * (`h:…`) or a number, never `@` and digits: references written before shards, and every shard-0
 * one, read as shard 0, and a shard-0 deployment's references are byte for byte as before.
 */
const SHARD_MARK = /^@(\d{1,4})$/;

/** A reference's lines with the shard's line added (none for shard 0). */
export function encodeRef(lines: readonly string[], shard: number): string {
  return (shard === 0 ? lines : [...lines, `@${shard}`]).join("\n");
}

/** A stored reference's lines without the shard's line, and its shard (0 when it has none). */
export function decodeRef(raw: string): { lines: string[]; shard: number } {
  const lines = raw.split("\n");
  const mark = SHARD_MARK.exec(lines[lines.length - 1] ?? "");
  if (!mark || lines.length < 3) return { lines, shard: 0 };
  return { lines: lines.slice(0, -1), shard: Number(mark[1]) };
}

/**
 * What is needed to file Twilio's answers: which step an SMS sid was sent for (status callbacks),
 * the latest check-in per number (replies), and the replies by time (owners' reports). The reply
 * texts themselves live on their step records, in the event's shard: every reference here is a
 * global key and names that shard.
 */
export class SmsReferences {
  private readonly keys: StoreKeys;
  private readonly redis: RedisClient & StoreCommands;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /**
   * Remembers which step an SMS belongs to, for Twilio's status callbacks and replies, with the
   * number's suppression member (SuppressionList.addressMember), so a later 21610 report can
   * suppress it after the purchase's contact data is scrubbed. A check-in becomes the number's
   * latest unless one sent later is remembered already (remember-latest-check-in.lua): `sentAt`
   * (epoch ms; now when not given) is when it was sent, which a redone bookkeeping knows. The
   * sid's reference is kept `keepMs`, and not past `notAfter` (epoch ms: the end of the purchase's
   * record) when given; the latest check-in always `keepMs` after `sentAt`, as its expiry tells
   * which check-in is the later. Answers the status callbacks that came before the reference
   * (keepEarlyStatus), earliest first, for the caller to apply and then drop (dropEarlyStatuses).
   */
  async rememberSms(
    sid: string,
    recipientMember: string,
    at: StepRef & { kind: string },
    keepMs: number,
    sentAt: number = Date.now(),
    notAfter?: number,
  ): Promise<EarlySmsStatus[]> {
    const sms = encodeRef([at.eventId, at.stepId, recipientMember], at.shard);
    // Separate writes, not a MULTI: building a pipeline copies every script defined on the
    // connection, and each write stands on its own (a missing one only repeats the opt-out hint).
    const [early] = await Promise.all([
      this.redis.fuRememberSms(
        this.keys.smsMessage(sid),
        this.keys.earlySmsStatuses(sid),
        sms,
        keptUntil(keepMs, notAfter),
      ),
      // Which text left it (a digest of its sid: the mark outlives the message's reference, and
      // a sid leads to the number and the text at Twilio): a text cancelled at Twilio, or one
      // whose customer was erased as it went, takes back its own mark only.
      this.redis.set(
        this.keys.textedNumber(recipientMember),
        textedBy(sid),
        "PX",
        TEXTED_MEMORY_MS,
      ),
      at.kind === "check-in"
        ? this.redis.fuRememberLatestCheckIn(
            this.keys.latestCheckIn(recipientMember),
            encodeRef([at.eventId, at.stepId], at.shard),
            Math.round(sentAt) + keepMs,
          )
        : undefined,
    ]);
    return early.flatMap(parseEarlyStatus);
  }

  /**
   * Keeps a status callback of an SMS whose reference is not written yet, for rememberSms to hand
   * over (keep-early-sms-status.lua): false when the reference is there after all (written since
   * it was looked up), and the status is to be handled as usual.
   */
  async keepEarlyStatus(sid: string, early: EarlySmsStatus): Promise<boolean> {
    const kept = await this.redis.fuKeepEarlySmsStatus(
      this.keys.smsMessage(sid),
      this.keys.earlySmsStatuses(sid),
      JSON.stringify({
        s: early.status,
        ...(early.errorCode !== undefined && { e: early.errorCode }),
        at: Math.round(early.receivedAt),
      }),
      EARLY_STATUS_MS,
      MAX_EARLY_STATUSES,
    );
    return kept === 1;
  }

  /** Drops the statuses rememberSms handed over, once they are applied. */
  async dropEarlyStatuses(sid: string): Promise<void> {
    await this.redis.del(this.keys.earlySmsStatuses(sid));
  }

  /**
   * Remembers which step an email (by its Message-ID) was sent for, so replies find their step:
   * for `keepMs`, and not past `notAfter` (epoch ms: the end of the purchase's record) when given.
   */
  async rememberEmail(
    messageId: string,
    at: StepRef,
    keepMs: number,
    notAfter?: number,
  ): Promise<void> {
    await this.redis.set(
      this.keys.emailMessage(messageId),
      encodeRef([at.eventId, at.stepId], at.shard),
      "PXAT",
      keptUntil(keepMs, notAfter),
    );
  }

  /**
   * Removes what rememberSms or rememberEmail wrote for one message, for a customer erased while it
   * was on its way: its reference, and for an SMS to `recipientMember` the number's mark "texted
   * before" when this text left it (it holds its sid's digest) and, for a check-in, the number's latest
   * check-in.
   */
  async forgetSent(
    channel: "email" | "sms",
    providerId: string,
    recipientMember?: string,
    checkIn = false,
  ): Promise<void> {
    const checkInOf = checkIn ? recipientMember : undefined;
    await this.redis.del(
      ...(channel === "email"
        ? [this.keys.emailMessage(providerId)]
        : [this.keys.smsMessage(providerId), this.keys.earlySmsStatuses(providerId)]),
      ...(checkInOf === undefined ? [] : [this.keys.latestCheckIn(checkInOf)]),
    );
    if (channel === "sms" && recipientMember !== undefined)
      await this.forgetTexted(recipientMember, providerId);
  }

  /**
   * Keeps the charge id (`chargeId`: the job id its send was charged under) of an SMS whose
   * customer is erased and whose reference goes, by a hash of its sid, for ERASED_CHARGE_MS: a
   * `canceled` or `failed` Twilio reports afterwards still gives the charge back (erasedChargeOf).
   */
  async keepErasedCharge(sid: string, chargeId: string): Promise<void> {
    await this.redis.set(this.keys.erasedSmsCharge(sid), chargeId, "PX", ERASED_CHARGE_MS);
  }

  /**
   * Drops the charge id keepErasedCharge kept (the SMS went out after all), keeping the key empty
   * for the rest of its time: Twilio's later reports of the text (posted again, `read`, a late
   * `failed`) still find it, give nothing back, and are not kept as statuses come early (with the
   * sid) for a reference that will never be written.
   */
  async settleErasedCharge(sid: string): Promise<void> {
    await this.redis.set(this.keys.erasedSmsCharge(sid), "", "KEEPTTL", "XX");
  }

  /**
   * The charge id kept by keepErasedCharge for the SMS `sid`: '' once settled (settleErasedCharge),
   * undefined when none is kept.
   */
  async erasedChargeOf(sid: string): Promise<string | undefined> {
    return (await this.redis.get(this.keys.erasedSmsCharge(sid))) ?? undefined;
  }

  /** The step an email was sent for, by its Message-ID (with or without angle brackets). */
  async stepOfEmail(messageId: string): Promise<StepRef | undefined> {
    const id = messageId.trim();
    const bracketed = id.startsWith("<") ? id : `<${id}>`;
    return parseRef(await this.redis.get(this.keys.emailMessage(bracketed)));
  }

  /**
   * Whether a number (by its suppression member) was texted within the last year: the first text
   * to a number says how to opt out.
   */
  async textedBefore(recipientMember: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.textedNumber(recipientMember))) === 1;
  }

  /**
   * Takes back the mark "texted before" that the SMS `sid` left, when it is still the last text
   * to the number (a text cancelled at Twilio reached no one: the number's next text is its first,
   * and carries the opt-out line). A mark another text left since, or one written before the mark
   * named its sid, stays. Read, then deleted: a text recorded in between loses its mark, and the
   * number's next text carries the opt-out line once more, which does no harm.
   */
  async forgetTexted(recipientMember: string, sid: string): Promise<void> {
    const key = this.keys.textedNumber(recipientMember);
    if ((await this.redis.get(key)) === textedBy(sid)) await this.redis.del(key);
  }

  /**
   * Takes the one opt-out confirmation a number may get within `windowMs`: true the first time,
   * false while an earlier confirmation is that recent.
   */
  async takeOptOutConfirmation(recipientMember: string, windowMs: number): Promise<boolean> {
    const key = this.keys.optOutConfirmed(recipientMember);
    return (await this.redis.set(key, "1", "PX", windowMs, "NX")) === "OK";
  }

  /** The step an SMS sid was sent for, and the suppression member of the number it went to. */
  async stepOfSms(sid: string): Promise<(StepRef & { recipient?: string }) | undefined> {
    const raw = await this.redis.get(this.keys.smsMessage(sid));
    const at = parseRef(raw);
    const recipient = raw === null ? undefined : decodeRef(raw).lines[2];
    return at && (recipient ? { ...at, recipient } : at);
  }

  /**
   * The latest check-in sent to a number (`recipientMember`, its suppression member), where
   * replies are filed; `phone` finds one a version before 4 December 2026 remembered.
   */
  async latestCheckIn(recipientMember: string, phone?: string): Promise<StepRef | undefined> {
    const found = await this.redis.get(this.keys.latestCheckIn(recipientMember));
    if (found !== null || phone === undefined) return parseRef(found);
    return parseRef(await this.redis.get(this.keys.legacyLatestCheckIn(phone)));
  }

  /**
   * Indexes a check-in reply (reply `n` of its step) by time, for the owners' reports; forgets
   * those older than keepMs.
   */
  async recordReply(
    at: StepRef & { n: number },
    receivedAt: number,
    keepMs: number,
  ): Promise<void> {
    const key = this.keys.replies();
    await this.redis.zadd(
      key,
      receivedAt,
      encodeRef([at.eventId, at.stepId, String(at.n)], at.shard),
    );
    await this.redis.zremrangebyscore(key, "-inf", receivedAt - keepMs);
  }

  /** Replies received in [since, until): their step and number (1 for those indexed before numbers). */
  async repliesBetween(since: number, until: number): Promise<(StepRef & { n: number })[]> {
    const refs = await this.redis.zrangebyscore(this.keys.replies(), since, `(${until}`);
    return refs.flatMap((raw) => {
      const ref = parseRef(raw);
      return ref ? [{ ...ref, n: Number(decodeRef(raw).lines[2] ?? "1") || 1 }] : [];
    });
  }
}

/** When a reference kept `keepMs` from now, and not past `notAfter`, expires (epoch ms). */
function keptUntil(keepMs: number, notAfter: number | undefined): number {
  const until = Date.now() + keepMs;
  return Math.round(notAfter === undefined ? until : Math.min(until, notAfter));
}

/** A kept status as keep-early-sms-status.lua stores it; none for one that does not read. */
function parseEarlyStatus(raw: string): EarlySmsStatus[] {
  try {
    const { s, e, at } = JSON.parse(raw) as { s?: unknown; e?: unknown; at?: unknown };
    if (typeof s !== "string" || typeof at !== "number") return [];
    return [{ status: s, ...(typeof e === "number" && { errorCode: e }), receivedAt: at }];
  } catch {
    return [];
  }
}

function parseRef(raw: string | null): StepRef | undefined {
  if (!raw) return undefined;
  const { lines, shard } = decodeRef(raw);
  const [eventId = "", stepId = ""] = lines;
  return { eventId, stepId, shard };
}
