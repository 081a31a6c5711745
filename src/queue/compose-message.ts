import { DateTime } from "luxon";
import type { OutgoingMessage } from "../channels/channel.js";
import { buildDiscountOffer } from "../domain/discount-code.js";
import { listUnsubscribeHeaders, unsubscribeUrl } from "../http/unsubscribe-link.js";
import { buildTemplateContext } from "../templates/template-context.js";
import type { TemplateSet } from "../templates/template-set.js";
import type { ComposeInput, ComposeMessage } from "./delivery-processor.js";

/**
 * Renders a due step with the current templates. Discount codes derive from the secret, the
 * customer and the follow-up id, so a retried send carries the same code; validity counts from
 * the planned due time, so it does not drift with retries either.
 */
export interface ComposerSettings {
  readonly discountSecret: string;
  /** Marketing emails carry unsubscribe links when these are known. */
  readonly unsubscribe?: {
    readonly publicUrl: string;
    readonly secret: string;
    readonly mailto?: string;
  };
}

export function createMessageComposer(
  templates: () => TemplateSet,
  settings: ComposerSettings,
): ComposeMessage {
  const { discountSecret } = settings;
  return async (input: ComposeInput): Promise<OutgoingMessage> => {
    const { event, step, rules, zone, followUpId } = input;
    const discount =
      step.kind === "discount"
        ? buildDiscountOffer({
            settings: rules.defaults.discount,
            secret: discountSecret,
            customerId: event.customer.id,
            followUpId,
            now: DateTime.fromMillis(input.dueAt),
            timezone: zone,
          })
        : null;
    const locale = event.customer.locale ?? rules.defaults.locale;
    const unsubscribe =
      step.purpose === "marketing" && settings.unsubscribe
        ? unsubscribeUrl(
            settings.unsubscribe.publicUrl,
            settings.unsubscribe.secret,
            event.customer.id,
            step.channel,
          )
        : null;
    const context = buildTemplateContext({
      purchase: event,
      step: { kind: step.kind, channel: step.channel },
      locale,
      timezone: zone,
      discount,
      unsubscribeUrl: unsubscribe,
    });
    const rendered = await templates().render(
      step.template,
      step.channel,
      event.customer.locale,
      context,
    );
    if (step.channel === "email") {
      return {
        channel: "email",
        followUpId,
        to: event.customer.email ?? "",
        subject: rendered.subject ?? "",
        text: rendered.text,
        ...(rendered.html !== undefined && { html: rendered.html }),
        ...(unsubscribe && {
          headers: listUnsubscribeHeaders({
            url: unsubscribe,
            ...(settings.unsubscribe?.mailto && { mailto: settings.unsubscribe.mailto }),
          }),
        }),
      };
    }
    return {
      channel: step.channel,
      followUpId,
      to: event.customer.phone ?? "",
      text: rendered.text,
    };
  };
}
