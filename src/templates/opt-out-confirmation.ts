import { OPT_OUT_CONFIRMATION_TEMPLATE, type RuleSet } from "../domain/rules.js";
import { countSmsSegments } from "../domain/sms-segments.js";
import { describeSmsLength } from "./sms-fit.js";
import type { ShopDetails, TemplateContext } from "./template-context.js";
import { TemplateError, type TemplateSet } from "./template-set.js";

/**
 * The one SMS a number gets after it opts out (optOutConfirmation in the rules): the
 * opt-out-confirmation template, in the customer's language. It knows nothing of purchases, so it
 * can carry no offer; its variables are the shop's only.
 */

/** The variables the confirmation sees. */
export interface OptOutConfirmationContext {
  readonly shop: TemplateContext["shop"];
}

/** Builds the confirmation's variables from the rules' shop. */
export function optOutConfirmationContext(shop: ShopDetails): OptOutConfirmationContext {
  return {
    shop: {
      name: shop.name,
      address: shop.address.length > 0 ? shop.address.join(", ") : null,
      addressLines: shop.address,
    },
  };
}

/**
 * The confirmation text for a number that opted out, in `locale` (falling back as templates do),
 * or null when the rules turn confirmations off. Throws a TemplateError when the template is
 * missing or renders over channels.sms.maxSegments (`followups check` reports both first).
 */
export async function renderOptOutConfirmation(
  templates: TemplateSet,
  locale: string | undefined,
  rules: RuleSet,
): Promise<string | null> {
  if (!rules.optOutConfirmation) return null;
  const context = optOutConfirmationContext({ name: rules.shopName, address: rules.shopAddress });
  const variant = templates.pick(OPT_OUT_CONFIRMATION_TEMPLATE, "sms", locale);
  const text = await templates.renderText(variant, context);
  const segments = countSmsSegments(text);
  const maxSegments = rules.channels.sms.maxSegments;
  if (segments > maxSegments) {
    throw new TemplateError(
      `the SMS needs ${segments} segments, over the cap of ${maxSegments} (channels.sms.maxSegments) (${describeSmsLength(text)})`,
      OPT_OUT_CONFIRMATION_TEMPLATE,
      variant.parts.text?.file,
    );
  }
  return text;
}
