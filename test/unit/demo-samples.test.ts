import { DateTime } from "luxon";
import { describe, expect, it } from "vitest";
import { demoSamples } from "../../src/cli/demo-command.js";
import { loadRules } from "../../src/config/load-rules.js";
import { parseEvent } from "../../src/domain/events.js";
import { planFollowUps } from "../../src/domain/planner.js";
import type { RuleSet } from "../../src/domain/rules.js";

/** Whether the purchase has a step due within two minutes of `now`, as the worker plans it. */
function dueAtOnce(event: Record<string, unknown> | undefined, rules: RuleSet, now: DateTime) {
  const parsed = parseEvent(event ?? {}, { now });
  if (!parsed.ok || parsed.event.type !== "purchase.completed") return false;
  const plan = planFollowUps(parsed.event, rules, { previousPurchases: 0 }, now);
  return plan.steps.some((step) => Date.parse(step.dueAt) <= now.plus({ minutes: 2 }).toMillis());
}

/** The demo's samples at `iso` under the shipped rules, with Ana's (the check-in text) apart. */
async function samplesAt(iso: string) {
  const loaded = await loadRules("config");
  if (!loaded.ok) throw new Error("the shipped rules are invalid");
  const now = DateTime.fromISO(iso, { zone: "utc" });
  const samples = demoSamples(loaded.rules, now, (name) => `demo-test-${name}`);
  const ana = samples.find((sample) => sample.title.startsWith("Ana"));
  return { rules: loaded.rules, now, samples, ana };
}

describe("the demo's samples under the shipped rules", () => {
  it("say a follow-up is due now only when it is: on a Sunday no zone is inside the SMS window", async () => {
    // Sunday 6 December 2026, 04:42 UTC: Sunday (or Saturday night) in every zone, and the
    // shipped SMS window is Monday to Saturday, 09:00 to 20:00.
    const { rules, now, samples, ana } = await samplesAt("2026-12-06T04:42:00Z");
    expect(dueAtOnce(ana?.event, rules, now)).toBe(false);
    for (const sample of samples) {
      if (/due now/.test(sample.title))
        expect(dueAtOnce(sample.event, rules, now), sample.title).toBe(true);
    }
    expect(`${ana?.title}\n${ana?.note ?? ""}`).toContain("send window");
  });

  it("still say so when a zone is inside the window", async () => {
    // Tuesday 8 December 2026, 12:00 UTC: inside the SMS window in London.
    const { rules, now, ana } = await samplesAt("2026-12-08T12:00:00Z");
    expect(ana?.title).toBe("Ana bought a TV three months ago: her check-in text is due now");
    expect(dueAtOnce(ana?.event, rules, now)).toBe(true);
  });
});
