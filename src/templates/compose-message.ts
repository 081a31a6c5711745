import { DateTime } from "luxon";
import type { OutgoingMessage } from "../channels/channel.js";
import { addressHash, customerHash } from "../domain/address-hash.js";
import { buildDiscountOffer, codeExpiresAt } from "../domain/discount-code.js";
import type { PurchaseCompleted } from "../domain/events.js";
import type { Rule, RuleSet, StepSpec } from "../domain/rules.js";
import { callVoiceFor, MAX_VOICE_TEXT_LENGTH, VOICE_LANGUAGES } from "../domain/voice-call.js";
import { fitLength } from "./sms-fit.js";
import { buildTemplateContext } from "./template-context.js";
import {
  localeInLanguageOf,
  type RenderClock,
  TemplateError,
  type TemplateSet,
} from "./template-set.js";
import { listUnsubscribeHeaders, unsubscribeUrl } from "./unsubscribe-link.js";

/** Everything a message needs to be written: the purchase, the step, and when it was due. */
export interface ComposeInput {
  readonly event: PurchaseCompleted;
  readonly rule: Rule;
  readonly step: StepSpec;
  readonly stepId: string;
  readonly followUpId: string;
  /**
   * What a discount code derives from: the step's own follow-up id, the same for its retries
   * and resends (`followUpId` is the job's, which a resend changes); default `followUpId`.
   */
  readonly discountId?: string;
  readonly dueAt: number;
  readonly zone: string;
  readonly rules: RuleSet;
  /**
   * No SMS has gone to this number before: an SMS then ends with the opt-out line in the
   * customer's language ("Reply STOP to opt out"), counted towards channels.sms.maxSegments.
   */
  readonly firstSmsToNumber: boolean;
  /** A coalesced thank-you: the customer's other purchases it thanks for too (`orders`). */
  readonly alsoThanked?: readonly PurchaseCompleted[];
}

/** Renders a step into a message for its channel (templates, discount codes). */
export type ComposeMessage = (input: ComposeInput) => Promise<OutgoingMessage>;

/** Secrets and links the composer needs beyond the templates. */
export interface ComposerSettings {
  readonly discountSecret: string;
  /** Marketing emails carry unsubscribe links when these are known. */
  readonly unsubscribe?: {
    readonly publicUrl: string;
    readonly secret: string;
    readonly mailto?: string;
    /**
     * ADDRESS_HASH_SECRET (or the deployment's shared one): links carry the keyed hashes of the
     * customer id and the address, as opt-outs are stored.
     */
    readonly addressHashSecret: string;
  };
  /**
   * What the render limit is measured in (RenderClock): wall time when sending (a render cut off
   * is retried later); CPU time for simulate and plan, whose answer nothing tries again, so a
   * loaded machine must not turn a render the worker would send into `render-failed`.
   */
  readonly renderClock?: RenderClock;
}

/**
 * Renders a due step with the current templates. Discount codes derive from the secret, the
 * customer and the step's follow-up id, so a retried or resent step carries the same code; validity counts from
 * the planned due time, so it does not drift with retries either. An SMS is kept within
 * channels.sms.maxSegments (TemplateSet.renderSms): names are shortened, or it fails to render.
 */
export function createMessageComposer(
  templates: () => TemplateSet,
  settings: ComposerSettings,
): ComposeMessage {
  const { discountSecret } = settings;
  const clock = settings.renderClock ?? "wall";
  return async (input: ComposeInput): Promise<OutgoingMessage> => {
    const { event, step, rules, zone, followUpId } = input;
    const discount =
      step.kind === "discount"
        ? buildDiscountOffer({
            settings: input.rule.discount ?? rules.defaults.discount,
            secret: discountSecret,
            customerId: event.customer.id,
            followUpId: input.discountId ?? followUpId,
            now: DateTime.fromMillis(input.dueAt),
            timezone: zone,
          })
        : null;
    const offer = discount && { ...discount, expiresAt: codeExpiresAt(discount.validUntil, zone) };
    const locale = event.customer.locale ?? rules.defaults.locale;
    const set = templates();
    // The variant the customer gets (their locale, its language, then the default's).
    const variant = set.pick(step.template, step.channel, event.customer.locale);
    const contact = step.channel === "email" ? event.customer.email : event.customer.phone;
    const unsubscribe =
      step.purpose === "marketing" && settings.unsubscribe
        ? unsubscribeUrl(
            settings.unsubscribe.publicUrl,
            settings.unsubscribe.secret,
            customerHash(settings.unsubscribe.addressHashSecret, event.customer.id),
            step.channel,
            contact && addressHash(settings.unsubscribe.addressHashSecret, contact),
            locale.split("-")[0],
          )
        : null;
    const context = buildTemplateContext({
      purchase: event,
      ...(input.alsoThanked && { alsoThanked: input.alsoThanked }),
      step: { kind: step.kind, channel: step.channel },
      // Dates and amounts as the variant's language writes them: the customer's own way when the
      // template is in their language, else the default locale's (or the variant's).
      locale: localeInLanguageOf(variant.locale, locale, rules.defaults.locale),
      timezone: zone,
      discount,
      unsubscribeUrl: unsubscribe,
      shop: { name: rules.shopName, address: rules.shopAddress },
    });
    if (step.channel === "sms") {
      const text = await set.renderSms(
        step.template,
        event.customer.locale,
        context,
        { maxSegments: rules.channels.sms.maxSegments, optOutLine: input.firstSmsToNumber },
        clock,
      );
      return {
        channel: "sms",
        followUpId,
        to: event.customer.phone ?? "",
        text,
        ...(offer && { offer }),
      };
    }
    const rendered = await set.render(step.template, step.channel, event.customer.locale, context, {
      clock,
    });
    if (step.channel === "email") {
      return {
        channel: "email",
        followUpId,
        to: event.customer.email ?? "",
        subject: rendered.subject ?? "",
        text: rendered.text,
        ...(rendered.html !== undefined && { html: rendered.html }),
        ...(offer && { offer }),
        ...(unsubscribe && {
          headers: listUnsubscribeHeaders({
            url: unsubscribe,
            ...(settings.unsubscribe?.mailto && { mailto: settings.unsubscribe.mailto }),
          }),
        }),
      };
    }
    // A call is spoken in the language of the template variant the customer gets; the customer's
    // region picks the accent (en-US, en-GB) when they speak the variant's language.
    const call = callVoiceFor(
      localeInLanguageOf(variant.locale, locale),
      rules.voiceCalls,
      step.purpose,
    );
    if (!call) {
      throw new TemplateError(
        `voice calls are spoken in ${VOICE_LANGUAGES.join(" or ")}; template ${step.template} answered in ${variant.locale}`,
        step.template,
        variant.parts.text?.file,
      );
    }
    // Long names from the purchase (a 300-character item name) are cut to fit, as in an SMS.
    const spoken =
      rendered.text.length <= MAX_VOICE_TEXT_LENGTH
        ? { ok: true, text: rendered.text }
        : await fitLength(
            async (shortened) =>
              (
                await set.render(step.template, step.channel, event.customer.locale, shortened, {
                  clock,
                })
              ).text,
            context,
            MAX_VOICE_TEXT_LENGTH,
          );
    if (!spoken.ok) {
      throw new TemplateError(
        `the call's message is ${spoken.text.length} characters, over the ${MAX_VOICE_TEXT_LENGTH} a call may speak, even with every name from the purchase shortened to one character`,
        step.template,
        variant.parts.text?.file,
      );
    }
    return {
      channel: "voice",
      followUpId,
      to: event.customer.phone ?? "",
      text: spoken.text,
      call,
    };
  };
}
