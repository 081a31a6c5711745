import { describe, expect, it } from "vitest";
import { checkInOutcomeOf } from "../../src/domain/check-in-comparison.js";
import type { ReportInput } from "../../src/reports/build-report-model.js";
import { durationWords } from "../../src/reports/report-phrases.js";
import { checkInField } from "../../src/store/delivery-ledger.js";
import { reportModelOf } from "../support/report-model.js";

const PERIOD = {
  since: "2026-11-16T00:00:00+01:00",
  until: "2026-11-23T00:00:00+01:00",
  timezone: "Europe/Berlin",
};

const modelOf = (counts: Record<string, number>, attribution?: ReportInput["attribution"]) =>
  reportModelOf(counts, { period: PERIOD, ...(attribution && { attribution }) });

describe("who is compared", () => {
  it("puts sent check-ins in one group and check-ins skipped for consent, opt-out, caps or budget in the other", () => {
    expect(checkInOutcomeOf("check-in", "sent")).toEqual({ group: "sent" });
    for (const code of ["no-consent", "opted-out", "capped", "budget-reached"])
      expect(checkInOutcomeOf("check-in", "skipped", code)).toEqual({ group: "skipped", code });
    // Not eligible: no phone number, too late, refunded; and other kinds are not check-ins.
    for (const code of ["no-contact", "past-due", "refunded"])
      expect(checkInOutcomeOf("check-in", "skipped", code)).toBeUndefined();
    expect(checkInOutcomeOf("thank-you", "sent")).toBeUndefined();
    expect(checkInOutcomeOf("discount", "skipped", "no-consent")).toBeUndefined();
  });

  it("names its ledger fields by group and reason", () => {
    expect(checkInField({ group: "sent" }, false)).toBe("checkin|sent");
    expect(checkInField({ group: "skipped", code: "capped" }, true)).toBe(
      "checkin-back|skipped|capped",
    );
  });
});

describe("the report model's check-in comparison", () => {
  it("adds up both groups and their returns from the period's ledger, with rates", () => {
    const model = modelOf(
      {
        "checkin|sent": 30,
        "checkin-back|sent": 6,
        "checkin|skipped|no-consent": 21,
        "checkin-back|skipped|no-consent": 2,
        "checkin|skipped|capped": 4,
        // Other fields of the same hour do not leak in.
        "sent|sms|check-in|big-ticket": 30,
        "back|email|thank-you|big-ticket|recent": 3,
      },
      { window: "P30D", now: Date.parse("2027-06-01T00:00:00Z") },
    );
    expect(model.checkInEffect).toEqual({
      window: "P30D",
      checkedIn: { customers: 30, cameBack: 6, rate: 0.2 },
      notCheckedIn: {
        customers: 25,
        cameBack: 2,
        rate: 0.08,
        byReason: [
          { code: "no-consent", customers: 21, cameBack: 2 },
          { code: "capped", customers: 4, cameBack: 0 },
        ],
      },
      comparable: true,
      smallestGroup: 20,
      openUntil: null,
    });
    expect(model.broughtBack.orders).toBe(3);
  });

  it("is not comparable while a group has fewer than 20 customers", () => {
    const model = modelOf({ "checkin|sent": 40, "checkin|skipped|opted-out": 19 });
    expect(model.checkInEffect.comparable).toBe(false);
    expect(model.checkInEffect.checkedIn).toEqual({ customers: 40, cameBack: 0, rate: 0 });
    expect(modelOf({}).checkInEffect.checkedIn.rate).toBeNull();
  });

  it("says until when customers of the period may still come back", () => {
    const open = modelOf({ "checkin|sent": 1 }, { window: "P30D", now: Date.parse(PERIOD.until) });
    expect(open.checkInEffect.openUntil).toBe("2026-12-23T00:00:00+01:00");
    const month = modelOf({}, { window: "P1M", now: Date.parse("2026-12-22T23:00:00Z") });
    expect(month.checkInEffect).toMatchObject({ window: "P1M", openUntil: null });
  });

  it("counts the window as a fixed length, as returns are counted: P1M is 30 days, P30D 720 hours", () => {
    const berlin = (since: string, until: string) => ({ since, until, timezone: "Europe/Berlin" });
    // A check-in at the end of January is answered by a purchase until 3 March, not 1 March.
    const january = reportModelOf(
      { "checkin|sent": 1 },
      {
        period: berlin("2027-01-25T00:00:00+01:00", "2027-02-01T00:00:00+01:00"),
        attribution: { window: "P1M", now: Date.parse("2027-03-02T00:00:00+01:00") },
      },
    );
    expect(january.checkInEffect.openUntil).toBe("2027-03-03T00:00:00+01:00");
    // Across the change to winter time, 720 hours from midnight is 23:00: closed by 23:30.
    const october = (now: string) =>
      reportModelOf(
        { "checkin|sent": 1 },
        {
          period: berlin("2026-10-13T00:00:00+02:00", "2026-10-20T00:00:00+02:00"),
          attribution: { window: "P30D", now: Date.parse(now) },
        },
      ).checkInEffect.openUntil;
    expect(october("2026-11-18T22:30:00+01:00")).toBe("2026-11-18T23:00:00+01:00");
    expect(october("2026-11-18T23:30:00+01:00")).toBeNull();
  });

  it("words the window without the host's locale data", () => {
    expect(durationWords("P30D")).toBe("30 days");
    expect(durationWords("P1M2W")).toBe("1 month and 2 weeks");
    expect(durationWords("PT12H")).toBe("12 hours");
  });
});
