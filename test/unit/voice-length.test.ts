import { beforeAll, describe, expect, it } from "vitest";
import type { RuleSet } from "../../src/domain/rules.js";
import { findStep } from "../../src/domain/step-ref.js";
import { MAX_VOICE_TEXT_LENGTH } from "../../src/domain/voice-call.js";
import { createMessageComposer } from "../../src/templates/compose-message.js";
import type { TemplateSet } from "../../src/templates/template-set.js";
import { item, purchase, shippedRules, shippedTemplates } from "../support/fixtures.js";

/**
 * A check-in call speaks at most MAX_VOICE_TEXT_LENGTH characters: a purchase whose names make
 * the shipped call longer has them shortened, as an SMS does, rather than failing the call.
 */

let rules: RuleSet;
let templates: TemplateSet;
beforeAll(async () => {
  rules = await shippedRules();
  templates = await shippedTemplates(rules);
});

async function callFor(itemName: string, storeName?: string, customerName?: string) {
  const found = findStep(rules, "big-ticket.check-in");
  if (!found) throw new Error("no check-in in the shipped rules");
  const compose = createMessageComposer(() => templates, { discountSecret: "test-secret" });
  return compose({
    event: purchase({
      occurredAt: "2026-03-12T10:00:00Z",
      ...(storeName && { store: { id: "s-1", name: storeName } }),
      ...(customerName && { customer: { name: customerName } }),
      items: [item("televisions", "1349.00", { name: itemName })],
    }),
    rule: found.rule,
    step: { ...found.step, channel: "voice", template: "check-in-call" },
    stepId: "big-ticket.check-in",
    followUpId: "fu-1",
    dueAt: Date.parse("2026-06-12T10:00:00Z"),
    zone: "Europe/London",
    rules,
    firstSmsToNumber: false,
  });
}

describe("a check-in call with long names from the purchase", () => {
  it("speaks a short purchase's words whole", async () => {
    const message = await callFor("Aurora TV");
    expect(message.channel).toBe("voice");
    expect(message.text).toContain("you bought Aurora TV from us");
  });

  it("shortens the names when they would make it longer than a call may speak", async () => {
    // Each at the event contract's bound, or nearly: about 870 characters spoken whole.
    const name = `Aurora ${"ultra wide ".repeat(26)}TV`;
    const store = `Corner ${"Electronics ".repeat(15)}Camden`;
    const message = await callFor(name, store, "Bartholomew".repeat(18));
    expect(message.channel).toBe("voice");
    expect(message.text.length).toBeLessThanOrEqual(MAX_VOICE_TEXT_LENGTH);
    expect(message.text).toMatch(/you bought Aurora ultra wide .*… from us/);
  });
});
