import { describe, expect, it } from "vitest";
import { currentKeyName } from "../../src/store/key-layout.js";
import {
  bucketOf,
  bucketStart,
  dayOf,
  hourOf,
  idHash,
  mayBePromoted,
  StoreKeys,
} from "../../src/store/keys.js";

/**
 * Key names are a contract with the data already in Redis: a renamed key orphans every record
 * written under the old name. These are pinned letter for letter (hashes computed independently:
 * the first 22 base64url characters of SHA-256:
 * `printf evt-1 | openssl dgst -sha256 -binary | basenc --base64url | cut -c1-22`). Every name
 * carries a Redis Cluster hash tag: `{followups:0}` for shard 0's keys, `{followups}` for global
 * ones (KeySpace).
 */
describe("the store's key names", () => {
  const keys = new StoreKeys("followups");

  it.each([
    ["eventRecord", keys.eventRecord("evt-1"), "{followups:0}:fu:e:e0Cfky0siOl_DBdnbIQg0-"],
    ["purchase", keys.purchase("evt-1"), "{followups:0}:fu:p:e0Cfky0siOl_DBdnbIQg0-"],
    ["customerHistory", keys.customerHistory("cus-1"), "{followups:0}:fu:c:cC-m5FWnmaK9pq0HpFGJFy"],
    ["order", keys.order("ord-1"), "{followups.global}:fu:o:2nJMYZvvgO7Vkdp5jTPPkz"],
    ["suppressions", keys.suppressions("sms"), "{followups.global}:fu:suppressed:sms"],
    [
      "capWindow",
      keys.capWindow("email", "cus-1"),
      "{followups:0}:fu:sent:email:cC-m5FWnmaK9pq0HpFGJFy",
    ],
    ["smsStatusFailures", keys.smsStatusFailures(), "{followups:0}:fu:smsfailed"],
    ["rateSlot", keys.rateSlot("email"), "{followups.global}:fu:rate:email"],
    ["smsMessage", keys.smsMessage("SM123"), "{followups.global}:fu:sid:SM123"],
    ["earlySmsStatuses", keys.earlySmsStatuses("SM123"), "{followups.global}:fu:sidearly:SM123"],
    ["callBinding", keys.callBinding("CA123"), "{followups.global}:fu:callsid:CA123"],
    // By the number's suppression member (its keyed hash).
    [
      "latestCheckIn",
      keys.latestCheckIn("h:8L8CKBRNn-K98d"),
      "{followups.global}:fu:ci:h:8L8CKBRNn-K98d",
    ],
    [
      "legacyLatestCheckIn",
      keys.legacyLatestCheckIn("+442079460958"),
      "{followups.global}:fu:ci:8L8CKBRNn-K98dotjKaY8X",
    ],
    ["replies", keys.replies(), "{followups.global}:fu:replies"],
    ["ledgerHour", keys.ledgerHour(498922), "{followups:0}:fu:agg:498922"],
    ["globalLedgerHour", keys.globalLedgerHour(498922), "{followups.global}:fu:agg:498922"],
    ["pendingDay", keys.pendingDay(20788), "{followups:0}:fu:due:20788"],
    ["jobWatchBucket", keys.jobWatchBucket(2967480), "{followups:0}:fu:j:2967480"],
    ["jobWatchIndex", keys.jobWatchIndex(), "{followups:0}:fu:j"],
    ["jobWatchLease", keys.jobWatchLease(2967480), "{followups:0}:fu:j:2967480:lease"],
    ["jobWatchUpgrade", keys.jobWatchUpgrade(), "{followups:0}:fu:jw"],
    ["eventRecords", keys.eventRecords(), "{followups:0}:fu:e:*"],
    [
      "lostJobRequeue",
      keys.lostJobRequeue("evt-1", "thank-you.thank-you"),
      "{followups:0}:fu:jq:e0Cfky0siOl_DBdnbIQg0-:thank-you.thank-you",
    ],
    ["webhookReceipt", keys.webhookReceipt("in:SM1"), "{followups.global}:fu:seen:in:SM1"],
    ["sharedSecret", keys.sharedSecret("discount"), "{followups.global}:fu:secret:discount"],
    ["ownerAlerts", keys.ownerAlerts("owner-1"), "{followups.global}:fu:alerts:owner-1"],
    [
      "ownerAlertLease",
      keys.ownerAlertLease("owner-1"),
      "{followups.global}:fu:alerts:owner-1:lease",
    ],
  ])("%s", (_name, actual, expected) => {
    expect(actual).toBe(expected);
  });

  it("numbers hours and days since the epoch", () => {
    const at = Date.UTC(2026, 11, 1, 10, 30);
    expect(hourOf(at)).toBe(498922);
    expect(dayOf(at)).toBe(20788);
    expect(dayOf(Date.UTC(2026, 11, 1) - 1)).toBe(20787);
  });

  it("files steps in ten-minute buckets, and knows which the promoter may have taken", () => {
    const at = Date.parse("2026-12-02T10:07:30Z");
    expect(bucketStart(at)).toBe(Date.parse("2026-12-02T10:00:00Z"));
    expect(bucketOf(at)).toBe(bucketOf(Date.parse("2026-12-02T10:09:59.999Z")));
    expect(bucketOf(at)).not.toBe(bucketOf(Date.parse("2026-12-02T10:10:00Z")));
    const now = Date.parse("2026-12-02T09:54:00Z");
    // With a five-minute horizon the 10:00 bucket (steps up to 10:09:59) is taken from 09:55 on.
    expect(mayBePromoted(at, now, 300_000)).toBe(false);
    expect(mayBePromoted(at, now + 60_000, 300_000)).toBe(true);
    expect(mayBePromoted(Date.parse("2026-12-02T09:00:00Z"), now, 300_000)).toBe(true);
  });

  it("hashes ids to 22 key-safe characters", () => {
    expect(idHash("a:b c/{x}")).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(idHash("evt-1")).toBe("e0Cfky0siOl_DBdnbIQg0-");
  });
});

describe("the upgrade from the key layout before hash tags", () => {
  const keys = new StoreKeys("followups");
  /** Methods naming keys that layout 1 had too (layout 2 added the rest). */
  const named = Object.getOwnPropertyNames(StoreKeys.prototype).filter(
    (name) =>
      ![
        "constructor",
        "patterns",
        "ledgers",
        "globalLedgerHour",
        "layoutVersion",
        "layoutLock",
        "ofShard",
        "shardCount",
        "eventIdClaim",
        "reshardMark",
        "movedMark",
        "arrivingMark",
        "moveLease",
        "operatorCommand",
        "operatorCommands",
        "addressIndexPacked",
        "orderLinks",
        "erasedCustomerGlobal",
        "consoleSignIns",
        "replanWalk",
        "replanLater",
        "replanLaterTries",
        "phoneOptedOutAt",
        "callBinding",
        "earlySmsStatuses",
        "erasedSmsCharge",
        "smsStatusFailures",
        "jobWatchBucket",
        "jobWatchIndex",
        "jobWatchLease",
        "lostJobRequeue",
        "jobWatchUpgrade",
        "eventRecords",
        "httpAddresses",
        "reportMark",
        "reportMarkLease",
      ].includes(name),
  );
  const keyOf = (name: string): string => {
    const method = (keys as unknown as Record<string, (...args: string[]) => string>)[name];
    if (!method) throw new Error(name);
    return method.apply(
      keys,
      Array.from({ length: method.length }, () => "email"),
    );
  };

  it.each(named)("renames the old name of %s to the new one", (name) => {
    const current = keyOf(name);
    const legacy = current.replace(/^\{followups(:0|\.global)?\}:/, "followups:");
    expect(legacy).toMatch(/^followups:fu:/);
    expect(currentKeyName("followups", legacy)).toBe(current);
  });

  it("puts every key in the shard's slot or the global one, by its hash tag", () => {
    const tags = new Set(named.map((name) => /^\{([^}]*)\}/.exec(keyOf(name))?.[1]));
    expect([...tags].sort()).toEqual(["followups.global", "followups:0"]);
    expect(keys.patterns()).toEqual(["{followups.global}:fu:*", "{followups:*}:fu:*"]);
  });

  it("leaves names that are not the store's alone", () => {
    expect(currentKeyName("followups", "followups:follow-ups:wait")).toBeUndefined();
    expect(currentKeyName("followups", "followups:fu:unknown:1")).toBeUndefined();
    expect(currentKeyName("followups", "other:fu:e:x")).toBeUndefined();
  });
});
