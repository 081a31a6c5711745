import type { Channel } from "../domain/events.js";

/** Headers for every HTML answer: no scripts, no framing, no token leaking through Referer. */
export const HTML_SECURITY_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
} as const;

/** Languages the pages speak; anything else gets English. */
export type PageLanguage = "en" | "de";
/** What the customer asks to stop: offers only, or every follow-up on the channel. */
export type UnsubscribeScope = "marketing" | "all";

const WORDS = {
  en: {
    /** The messages of a channel ("follow-up emails"). */
    channel: { email: "emails", sms: "text messages (SMS)", voice: "phone calls" },
    /** A channel as the way offers come ("offers by email"). */
    by: { email: "email", sms: "text message (SMS)", voice: "phone" },
    confirmTitle: (shop: string) => `Unsubscribe from ${shop}`,
    confirmText: (by: string, shop: string) =>
      `Choose what to stop. Offers are discounts and other promotions by ${by} from ${shop}; follow-ups also include thank-you notes and check-ins after a purchase.`,
    stopOffers: "Stop offers",
    stopAll: "Stop all follow-ups",
    doneTitle: "You are unsubscribed",
    doneOffers: (by: string, shop: string) =>
      `You will not receive offers by ${by} from ${shop} any more.`,
    doneAll: (what: string, shop: string) =>
      `You will not receive follow-up ${what} from ${shop} any more.`,
    invalidTitle: "This link is not valid",
    invalidText:
      "This unsubscribe link is not valid. Please use the link from the most recent message you received, or contact the shop.",
    unavailableTitle: "Please try again later",
    unavailableText:
      "We could not process your request just now. Nothing was changed; please try again in a few minutes.",
  },
  de: {
    channel: { email: "E-Mails", sms: "SMS", voice: "Anrufe" },
    by: { email: "E-Mail", sms: "SMS", voice: "Telefon" },
    confirmTitle: (shop: string) => `Abmelden bei ${shop}`,
    confirmText: (by: string, shop: string) =>
      `Wählen Sie, was aufhören soll. Angebote sind Rabatte und andere Werbung per ${by} von ${shop}; Folgenachrichten umfassen auch Dankesnachrichten und Nachfragen nach einem Kauf.`,
    stopOffers: "Keine Angebote mehr",
    stopAll: "Keine Folgenachrichten mehr",
    doneTitle: "Sie sind abgemeldet",
    doneOffers: (by: string, shop: string) =>
      `Sie erhalten keine Angebote per ${by} von ${shop} mehr.`,
    doneAll: (what: string, shop: string) =>
      `Sie erhalten keine ${what} mit Folgenachrichten von ${shop} mehr.`,
    invalidTitle: "Dieser Link ist nicht gültig",
    invalidText:
      "Dieser Abmeldelink ist nicht gültig. Bitte nutzen Sie den Link aus der neuesten Nachricht oder wenden Sie sich an den Shop.",
    unavailableTitle: "Bitte versuchen Sie es später noch einmal",
    unavailableText:
      "Wir konnten Ihre Anfrage gerade nicht bearbeiten. Es wurde nichts geändert; bitte versuchen Sie es in ein paar Minuten noch einmal.",
  },
} as const;

const STYLE =
  "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;padding:2rem 1rem;color:#1a1a1a;background:#fafafa}" +
  "main{max-width:32rem;margin:0 auto}" +
  "form{display:inline-block;margin:0 .5rem .5rem 0}" +
  "button{font:inherit;padding:.6rem 1.4rem;border:2px solid #1a1a1a;border-radius:.4rem;background:#fff;cursor:pointer}" +
  "button:focus-visible{outline:3px solid #005fcc;outline-offset:2px}";

/**
 * The page's language: `lang` from the link (the customer's locale when the message was
 * written), else the browser's first preference we speak, else English.
 */
export function pageLanguage(lang: unknown, acceptLanguage: unknown): PageLanguage {
  const wanted = [
    typeof lang === "string" ? lang : "",
    ...(typeof acceptLanguage === "string" ? acceptLanguage.split(",") : []),
  ];
  for (const tag of wanted) {
    const primary = tag.trim().split(/[-_;]/)[0]?.toLowerCase();
    if (primary === "en" || primary === "de") return primary;
  }
  return "en";
}

/** The GET page: says what can stop, and asks for one press of a POST button. */
export function confirmUnsubscribePage(
  shopName: string,
  channel: Channel,
  language: PageLanguage = "en",
): string {
  const words = WORDS[language];
  const shop = escapeHtml(shopName);
  const by = escapeHtml(words.by[channel]);
  const button = (scope: UnsubscribeScope, label: string) =>
    `<form method="post"><input type="hidden" name="scope" value="${scope}"><button type="submit">${escapeHtml(label)}</button></form>`;
  return page(
    language,
    words.confirmTitle(shop),
    `<p>${words.confirmText(by, shop)}</p>` +
      button("marketing", words.stopOffers) +
      button("all", words.stopAll),
  );
}

/** The answer to the POST, shown again when pressed twice. */
export function unsubscribedPage(
  shopName: string,
  channel: Channel,
  scope: UnsubscribeScope = "all",
  language: PageLanguage = "en",
): string {
  const words = WORDS[language];
  const shop = escapeHtml(shopName);
  const text =
    scope === "marketing"
      ? words.doneOffers(escapeHtml(words.by[channel]), shop)
      : words.doneAll(escapeHtml(words.channel[channel]), shop);
  return page(language, words.doneTitle, `<p role="status">${text}</p>`);
}

/** A refused or broken link: nothing was changed. */
export function invalidLinkPage(language: PageLanguage = "en"): string {
  const words = WORDS[language];
  return page(language, words.invalidTitle, `<p>${words.invalidText}</p>`);
}

/** Something on our side failed; the customer may try again. */
export function unavailablePage(language: PageLanguage = "en"): string {
  const words = WORDS[language];
  return page(language, words.unavailableTitle, `<p>${words.unavailableText}</p>`);
}

function page(language: PageLanguage, title: string, body: string): string {
  return (
    `<!doctype html>\n<html lang="${language}"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="robots" content="noindex"><title>${title}</title><style>${STYLE}</style></head>` +
    `<body><main><h1>${title}</h1>${body}</main></body></html>\n`
  );
}

/** Text into HTML element content or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
