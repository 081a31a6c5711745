import { beforeAll, describe, expect, it } from "vitest";
import type { EmailMessage } from "../../src/channels/channel.js";
import type { RuleSet } from "../../src/domain/rules.js";
import { findStep } from "../../src/domain/step-ref.js";
import { createMessageComposer } from "../../src/templates/compose-message.js";
import type { TemplateSet } from "../../src/templates/template-set.js";
import { item, purchase, shippedRules, shippedTemplates } from "../support/fixtures.js";

/**
 * A customer whose language has no template gets the default locale's: its dates and amounts
 * are written as that template's readers read them, not in the customer's language in the middle
 * of another's sentence ("bought on ١٢ مارس ٢٠٢٦", "Total: 1 349,00 £GB").
 */

let rules: RuleSet;
let templates: TemplateSet;
beforeAll(async () => {
  rules = await shippedRules();
  templates = await shippedTemplates(rules);
});

async function thankYouFor(locale: string): Promise<EmailMessage> {
  const found = findStep(rules, "big-ticket.thank-you");
  if (!found) throw new Error("no thank-you in the shipped rules");
  const compose = createMessageComposer(() => templates, { discountSecret: "test-secret" });
  const message = await compose({
    event: purchase({
      occurredAt: "2026-03-12T10:00:00Z",
      customer: { locale },
      items: [item("televisions", "1349.00", { name: "Aurora TV" })],
    }),
    rule: found.rule,
    step: found.step,
    stepId: "big-ticket.thank-you",
    followUpId: "fu-1",
    dueAt: Date.parse("2026-03-12T11:00:00Z"),
    zone: "Europe/London",
    rules,
    firstSmsToNumber: false,
  });
  if (message.channel !== "email") throw new Error("expected an email");
  return message;
}

describe("dates and amounts follow the language of the template the customer gets", () => {
  it.each(["ar-EG", "fr-FR", "ja-JP", "en-GB"])(
    "a customer in %s gets the English email written as the default locale en-GB writes",
    async (locale) => {
      const message = await thankYouFor(locale);
      expect(message.subject).toMatch(/^Thank you for your order/);
      expect(message.text).toContain("Here is what you bought on 12 March 2026:");
      expect(message.text).toContain("Total: £1,349.00");
      expect(message.html).toContain("Total: £1,349.00");
    },
  );

  it("a customer in en-US, whose language has the template, keeps their region's way", async () => {
    const message = await thankYouFor("en-US");
    expect(message.text).toContain("Here is what you bought on March 12, 2026:");
  });

  it("a customer in de-AT gets the German email in Austrian German", async () => {
    const message = await thankYouFor("de-AT");
    expect(message.text).toContain("12. März 2026");
    expect(message.text).toMatch(/£\s1\.349,00/);
  });
});
