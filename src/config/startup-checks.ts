import type { RuleSet } from "../domain/rules.js";
import { stepIdOf } from "../domain/step-ref.js";

/**
 * Why marketing emails could not carry an unsubscribe link that works for every recipient, or
 * undefined: CAN-SPAM and RFC 8058 one-click need a public https address. The worker refuses to
 * start (or a rules edit) with this when real email goes out, and warns when mail only goes to the
 * outbox.
 */
export function marketingEmailLinkProblem(
  rules: RuleSet,
  publicUrl: string | undefined,
): string | undefined {
  const marketing = rules.rules.flatMap((rule) =>
    rule.steps
      .filter((step) => step.channel === "email" && step.purpose === "marketing")
      .map((step) => stepIdOf(rule, step)),
  );
  if (marketing.length === 0 || publicUrl?.startsWith("https://")) return undefined;
  const found = publicUrl === undefined ? "it is not set" : `got ${publicUrl}`;
  return `PUBLIC_URL must be an https URL that reaches this service (${found}): the marketing email steps ${marketing.join(", ")} carry unsubscribe links that must work for every recipient`;
}
